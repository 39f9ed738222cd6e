//! Descriptions of Vulkan structs and commands, as the generator emits them.
//!
//! Airlock does not generate one encoder and one decoder function per struct. The generator emits
//! a static table per struct and per command (`generated/structs.rs`, `generated/commands.rs`),
//! with every member's offset taken from ash's own definitions by `offset_of!`, and one audited
//! interpreter (`interp`) walks those tables. This keeps the generated code mechanical and the
//! zero-trust checks in one place where they can be tested and fuzzed once for every struct.

use ash::vk;

/// The type of one value: a scalar, a handle or an inline struct.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    U8,
    U16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// `size_t`: 8 bytes on the wire, checked to fit on the receiving side.
    Usize,
    /// A non-dispatchable handle: the client-allocated id travels.
    Handle(vk::ObjectType),
    /// A dispatchable handle (a pointer in C): the object's id travels.
    Dispatchable(vk::ObjectType),
    /// A struct embedded by value.
    Struct(&'static StructDesc),
    /// A union of plain data (size, alignment): its bytes travel as they are.
    Union(usize, usize),
}

/// Where the element count of an array member comes from.
#[derive(Debug, Clone, Copy)]
pub enum Len {
    /// Another member of the same struct (or parameter of the same command), by index.
    Sibling(u16),
    /// `(rasterizationSamples + 31) / 32` words: `pSampleMask`.
    SampleMaskWords(u16),
    /// A member of a struct pointed to by another parameter (`pAllocateInfo->descriptorSetCount`).
    SiblingMember { index: u16, offset: u32, ty: Ty },
    /// A fixed number.
    Const(u32),
}

/// How one struct member or one command parameter travels.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Value(Ty),
    /// A handle that must name an object: vk.xml marks it neither optional nor free of
    /// automatic validation, and the host driver dereferences it unchecked, so
    /// `VK_NULL_HANDLE` is refused.
    Object(Ty),
    FixedArray(Ty, u32),
    SType,
    PNext,
    /// `const T*` to one element.
    Ptr {
        elem: Ty,
        optional: bool,
    },
    /// `const T*` to `len` elements.
    Array {
        elem: Ty,
        len: Len,
        optional: bool,
    },
    /// `const char*`, NUL-terminated.
    Str {
        optional: bool,
    },
    /// `const char* const*` with `len` strings.
    StrArray {
        len: Len,
    },
    /// `const void*` with a byte length.
    Bytes {
        len: Len,
    },
    /// Pointers that never cross (allocation callbacks, user data): the server sees NULL.
    Null,
    /// `T*` the driver writes one element into (an output struct with its chain, a scalar, or a
    /// handle the client named in advance).
    Out(Ty),
    /// `T*` the driver writes `len` elements into.
    OutArray {
        elem: Ty,
        len: Len,
    },
    /// `T*` of the "count, then fill" idiom; `count` is the index of the in/out count parameter.
    OutCounted {
        elem: Ty,
        count: u16,
    },
    /// The in/out count of that idiom (`uint32_t*` or `size_t*`).
    InOutCount(Ty),
    /// `void*` the driver writes up to `len` bytes into. The bytes travel both ways: what the
    /// driver leaves unwritten keeps the application's contents (`vkGetQueryPoolResults` writes
    /// nothing for unavailable queries).
    OutBytes {
        len: Len,
    },
    /// `void*` of the "size, then fill" idiom (`vkGetPipelineCacheData`).
    OutCountedBytes {
        count: u16,
    },
}

/// An extension Airlock can carry, with the spec version of the pinned vk.xml.
#[derive(Debug)]
pub struct ExtensionDesc {
    pub name: &'static str,
    pub spec_version: u32,
    pub instance: bool,
    /// Implemented by the ICD alone (window-system integration): never carried to the server.
    pub client: bool,
}

/// The extension of that name that Airlock encodes: a binary search, `EXTENSIONS` being
/// sorted by name as codegen writes it (and `extensions_sorted` checks).
pub fn extension(name: &str) -> Option<&'static ExtensionDesc> {
    let all = crate::generated::commands::EXTENSIONS;
    all.binary_search_by(|e| e.name.cmp(name))
        .ok()
        .map(|i| &all[i])
}

#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub offset: usize,
    pub kind: Kind,
}

#[derive(Debug)]
pub struct StructDesc {
    pub name: &'static str,
    pub s_type: Option<vk::StructureType>,
    pub size: usize,
    pub align: usize,
    pub fields: &'static [Field],
    /// The structure types that may appear in this struct's `pNext` chain.
    pub extended_by: &'static [vk::StructureType],
    pub returned_only: bool,
}

/// What a command returns in C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Void,
    Result,
    U32,
    U64,
    Bool32,
}

/// Which dispatch table a command is resolved through on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Global,
    Instance,
    PhysicalDevice,
    Device,
}

#[derive(Debug)]
pub struct CommandDesc {
    pub name: &'static str,
    pub id: u32,
    /// Other names of this command (promoted extension names).
    pub aliases: &'static [&'static str],
    /// The core version or extension that brings it in.
    pub origin: &'static str,
    pub level: Level,
    pub ret: Ret,
    pub params: &'static [Field],
    /// The client names the handles this command outputs (`vkCreate*`, `vkAllocate*`); otherwise the
    /// server names the objects it reports (physical devices, queues).
    pub creates: bool,
    /// The parameter whose handle(s) this command destroys, if any.
    pub destroys: Option<u16>,
    /// Waits or compiles: the server runs it off its reader thread so other threads go on.
    pub blocking: bool,
    /// A `vkCmd*` command: the client records it into the command buffer's batch.
    pub recorded: bool,
    /// What it returns once the server is gone (a lost device): `VK_ERROR_DEVICE_LOST` where
    /// Vulkan lists that among the command's results, else another result it allows.
    pub lost: vk::Result,
}

impl CommandDesc {
    /// Whether the client must wait for a reply (anything returned or written back).
    pub fn needs_reply(&self) -> bool {
        self.ret != Ret::Void || self.params.iter().any(|p| p.kind.is_output())
    }
}

impl Ty {
    /// Size of the value in C memory.
    pub fn c_size(&self) -> usize {
        match self {
            Ty::U8 => 1,
            Ty::U16 => 2,
            Ty::U32 | Ty::I32 | Ty::F32 => 4,
            Ty::U64 | Ty::I64 | Ty::F64 | Ty::Usize | Ty::Handle(_) | Ty::Dispatchable(_) => 8,
            Ty::Struct(d) => d.size,
            Ty::Union(n, _) => *n,
        }
    }

    pub fn c_align(&self) -> usize {
        match self {
            Ty::Struct(d) => d.align,
            Ty::Union(_, a) => *a,
            other => other.c_size(),
        }
    }

    /// The fewest bytes one element can take on the wire; bounds counts read from a peer.
    pub fn min_wire_size(&self) -> usize {
        match self {
            Ty::U8 | Ty::U16 => 1,
            Ty::Struct(d) => d
                .fields
                .iter()
                .map(|f| f.kind.min_wire_size())
                .sum::<usize>()
                .max(1),
            Ty::Union(n, _) => *n,
            _ => 4,
        }
    }
}

impl Kind {
    /// Whether the driver writes through this parameter (results travel back in the reply).
    pub fn is_output(&self) -> bool {
        matches!(
            self,
            Kind::Out(_)
                | Kind::OutArray { .. }
                | Kind::OutCounted { .. }
                | Kind::InOutCount(_)
                | Kind::OutBytes { .. }
                | Kind::OutCountedBytes { .. }
        )
    }

    pub fn min_wire_size(&self) -> usize {
        match self {
            Kind::Value(t) | Kind::Object(t) => t.min_wire_size(),
            Kind::FixedArray(t, n) => (t.min_wire_size() * *n as usize).max(1),
            // sType travels implicitly; never-sent pointers not at all.
            Kind::SType | Kind::Null => 0,
            _ => 4,
        }
    }
}

#[cfg(test)]
mod extension_tests {
    use crate::generated::commands::EXTENSIONS;

    #[test]
    fn extensions_sorted() {
        assert!(EXTENSIONS.windows(2).all(|w| w[0].name < w[1].name));
        for e in EXTENSIONS {
            assert_eq!(super::extension(e.name).map(|f| f.name), Some(e.name));
        }
        assert!(super::extension("VK_KHR_not_an_extension").is_none());
    }
}
