//! Reads vk.xml into the subset Airlock generates code for: selected commands, the structs they
//! reach, and how each member and parameter travels.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use vk_parse::{
    Command, EnumSpec, EnumsChild, ExtensionChild, InterfaceItem, Registry, RegistryChild,
    TypeMember, TypeMemberMarkup, TypeSpec, TypesChild,
};

/// A C declaration: `const T* const* name[N]`.
#[derive(Debug, Clone)]
pub struct Decl {
    pub name: String,
    pub ty: String,
    pub ptr_depth: usize,
    pub is_const: bool,
    pub array: Option<String>,
    pub len: Option<String>,
    pub altlen: Option<String>,
    pub optional: bool,
    pub bitfield: bool,
}

#[derive(Debug, Clone)]
pub struct StructDef {
    pub name: String,
    pub is_union: bool,
    pub members: Vec<Decl>,
    pub s_type: Option<String>,
    pub extends: Vec<String>,
    pub returned_only: bool,
}

#[derive(Debug, Clone)]
pub struct CommandDef {
    pub name: String,
    pub ret: String,
    pub params: Vec<Decl>,
    pub aliases: Vec<String>,
    /// vk.xml's `errorcodes`: the error results the command may return.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    Base(&'static str),
    Enum,
    Bitmask { wide: bool },
    Handle { dispatchable: bool, objtype: String },
    Struct,
    FuncPointer,
    Other,
}

pub struct Model {
    pub header_version: u32,
    pub categories: HashMap<String, Category>,
    pub aliases: HashMap<String, String>,
    pub structs: BTreeMap<String, StructDef>,
    pub commands: BTreeMap<String, CommandDef>,
    pub constants: HashMap<String, String>,
    /// Selected commands with the feature or extension that brings each in first.
    pub selected_commands: BTreeMap<String, String>,
    /// Every name a selected feature or extension gives a command (aliases included), with
    /// all the features and extensions that give it.
    pub command_names: BTreeMap<String, BTreeSet<String>>,
    /// Types named by the selected features and extensions.
    pub selected_types: BTreeSet<String>,
    /// Selected extensions: name, spec version, instance (true) or device, and whether the ICD
    /// implements it alone (window-system integration: it never reaches the server).
    pub extensions: Vec<(String, u32, bool, bool)>,
    /// The commands of the ICD's own extensions (and of the parts of other extensions that
    /// depend on them), with the feature or extension that brings each in: entry points only,
    /// written by hand, never carried.
    pub client_commands: BTreeMap<String, String>,
}

fn base_type(c: &str) -> Option<&'static str> {
    Some(match c {
        "uint8_t" | "char" => "u8",
        "uint16_t" => "u16",
        "uint32_t" | "VkBool32" | "VkSampleMask" | "VkFlags" => "u32",
        "int32_t" | "int" => "i32",
        "uint64_t" | "VkDeviceSize" | "VkDeviceAddress" | "VkFlags64" => "u64",
        "int64_t" => "i64",
        "float" => "f32",
        "double" => "f64",
        "size_t" => "usize",
        "void" => "void",
        _ => return None,
    })
}

fn parse_decl(code: &str, ty: &str, name: &str, array_enum: Option<&str>) -> Decl {
    let after_name = code.rsplit_once(name).map(|(_, a)| a).unwrap_or("");
    let before_name = code.rsplit_once(name).map(|(b, _)| b).unwrap_or(code);
    let array = if let Some(e) = array_enum {
        Some(e.to_string())
    } else if after_name.trim_start().starts_with('[') {
        // `float matrix[3][4]` flattens to 12.
        let dims: Vec<u32> = after_name
            .split(['[', ']'])
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        Some(dims.iter().product::<u32>().to_string())
    } else {
        None
    };
    Decl {
        name: name.to_string(),
        ty: ty.to_string(),
        ptr_depth: before_name.matches('*').count(),
        is_const: before_name.trim_start().starts_with("const"),
        array,
        len: None,
        altlen: None,
        optional: false,
        bitfield: after_name.trim_start().starts_with(':'),
    }
}

fn is_vulkan_api(api: &Option<String>) -> bool {
    api.as_deref()
        .is_none_or(|a| a.split(',').any(|x| x == "vulkan"))
}

impl Model {
    pub fn load(
        registry: &Registry,
        allowed: &BTreeSet<String>,
        client: &BTreeSet<String>,
    ) -> Result<Model, String> {
        let mut m = Model {
            header_version: 0,
            categories: HashMap::new(),
            aliases: HashMap::new(),
            structs: BTreeMap::new(),
            commands: BTreeMap::new(),
            constants: HashMap::new(),
            selected_commands: BTreeMap::new(),
            command_names: BTreeMap::new(),
            selected_types: BTreeSet::new(),
            extensions: Vec::new(),
            client_commands: BTreeMap::new(),
        };
        let mut command_aliases: Vec<(String, String)> = Vec::new();
        for child in &registry.0 {
            match child {
                RegistryChild::Types(types) => {
                    for t in &types.children {
                        let TypesChild::Type(t) = t else { continue };
                        if !is_vulkan_api(&t.api) {
                            continue;
                        }
                        m.load_type(t);
                    }
                }
                RegistryChild::Enums(enums) => {
                    for e in &enums.children {
                        if let EnumsChild::Enum(e) = e {
                            if let EnumSpec::Value { value, .. } = &e.spec {
                                m.constants.insert(e.name.clone(), value.clone());
                            }
                        }
                    }
                }
                RegistryChild::Commands(cmds) => {
                    for c in &cmds.children {
                        match c {
                            Command::Alias { name, alias } => {
                                command_aliases.push((name.clone(), alias.clone()))
                            }
                            Command::Definition(d) => {
                                if !is_vulkan_api(&d.api) {
                                    continue;
                                }
                                if let Some(alias) = &d.alias {
                                    command_aliases.push((d.proto.name.clone(), alias.clone()));
                                    continue;
                                }
                                let params = d
                                    .params
                                    .iter()
                                    .filter(|p| is_vulkan_api(&p.api))
                                    .map(|p| {
                                        let mut decl = parse_decl(
                                            &p.definition.code,
                                            p.definition.type_name.as_deref().unwrap_or(""),
                                            &p.definition.name,
                                            None,
                                        );
                                        decl.len = p.len.clone();
                                        decl.altlen = p.altlen.clone();
                                        let unchecked = p.noautovalidity.as_deref() == Some("true");
                                        // An array whose checks the spec writes out by hand
                                        // (its elements may be VK_NULL_HANDLE, a stride
                                        // spaces them) must still be there when its count is
                                        // not 0, unless the spec says it may be NULL.
                                        let array_required = unchecked
                                            && p.len.is_some()
                                            && p.optional.is_none()
                                            && !NULL_ARRAYS.contains(&p.definition.name.as_str());
                                        decl.optional = p
                                            .optional
                                            .as_deref()
                                            .is_some_and(|o| o.starts_with("true"))
                                            || (unchecked && !array_required);
                                        decl
                                    })
                                    .collect();
                                let name = d.proto.name.clone();
                                m.commands.insert(
                                    name.clone(),
                                    CommandDef {
                                        name,
                                        ret: d.proto.type_name.clone().unwrap_or_default(),
                                        params,
                                        aliases: Vec::new(),
                                        errors: d
                                            .errorcodes
                                            .as_deref()
                                            .unwrap_or("")
                                            .split(',')
                                            .filter(|e| !e.is_empty())
                                            .map(str::to_string)
                                            .collect(),
                                    },
                                );
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        for (alias, target) in command_aliases {
            if let Some(c) = m.commands.get_mut(&target) {
                c.aliases.push(alias);
            }
        }
        m.select(registry, allowed, client)?;
        Ok(m)
    }

    fn load_type(&mut self, t: &vk_parse::Type) {
        // Handles, bitmasks and base types carry their name in the code markup.
        let markup_name = match &t.spec {
            TypeSpec::Code(c) => c.markup.iter().find_map(|mk| match mk {
                vk_parse::TypeCodeMarkup::Name(n) => Some(n.clone()),
                _ => None,
            }),
            _ => None,
        };
        let Some(name) = t.name.clone().or(markup_name) else {
            return;
        };
        if let Some(alias) = &t.alias {
            self.aliases.insert(name, alias.clone());
            return;
        }
        let category = t.category.as_deref().unwrap_or("");
        let cat = match category {
            "enum" => Category::Enum,
            "bitmask" => {
                let wide = match &t.spec {
                    TypeSpec::Code(c) => c.code.contains("VkFlags64"),
                    _ => false,
                };
                Category::Bitmask { wide }
            }
            "handle" => {
                let dispatchable = match &t.spec {
                    TypeSpec::Code(c) => !c.code.contains("NON_DISPATCHABLE"),
                    _ => false,
                };
                Category::Handle {
                    dispatchable,
                    objtype: t.objtypeenum.clone().unwrap_or_default(),
                }
            }
            "struct" | "union" => {
                let mut members = Vec::new();
                let mut s_type = None;
                if let TypeSpec::Members(ms) = &t.spec {
                    for mem in ms {
                        let TypeMember::Definition(d) = mem else {
                            continue;
                        };
                        if !is_vulkan_api(&d.api) {
                            continue;
                        }
                        let mut ty = String::new();
                        let mut mname = String::new();
                        let mut arr = None;
                        for mk in &d.markup {
                            match mk {
                                TypeMemberMarkup::Type(x) => ty = x.clone(),
                                TypeMemberMarkup::Name(x) => mname = x.clone(),
                                TypeMemberMarkup::Enum(x) => arr = Some(x.clone()),
                                _ => {}
                            }
                        }
                        let mut decl = parse_decl(&d.code, &ty, &mname, arr.as_deref());
                        decl.len = d.len.clone();
                        decl.altlen = d.altlen.clone();
                        // A member the spec does not validate automatically (selected by another
                        // member, like VkWriteDescriptorSet's arrays) may be NULL.
                        decl.optional =
                            d.optional.as_deref().is_some_and(|o| o.starts_with("true"))
                                || d.noautovalidity.as_deref() == Some("true");
                        if mname == "sType" {
                            s_type = d.values.clone();
                        }
                        members.push(decl);
                    }
                }
                self.structs.insert(
                    name.clone(),
                    StructDef {
                        name: name.clone(),
                        is_union: category == "union",
                        members,
                        s_type,
                        extends: t
                            .structextends
                            .as_deref()
                            .map(|s| s.split(',').map(str::to_string).collect())
                            .unwrap_or_default(),
                        returned_only: t.returnedonly.as_deref() == Some("true"),
                    },
                );
                Category::Struct
            }
            "funcpointer" => Category::FuncPointer,
            "basetype" => match base_type(&name) {
                Some(b) => Category::Base(b),
                None => Category::Other,
            },
            _ => match base_type(&name) {
                Some(b) => Category::Base(b),
                None => Category::Other,
            },
        };
        self.categories.insert(name, cat);
    }

    pub fn resolve<'a>(&'a self, name: &'a str) -> &'a str {
        let mut n = name;
        while let Some(a) = self.aliases.get(n) {
            n = a;
        }
        n
    }

    pub fn category(&self, ty: &str) -> Category {
        if let Some(b) = base_type(ty) {
            return Category::Base(b);
        }
        let c = self
            .categories
            .get(self.resolve(ty))
            .cloned()
            .unwrap_or(Category::Other);
        if c == Category::Enum && ty.contains("FlagBits") {
            // A single bit passed alone: ash types it as the matching flags type.
            return self.category(&self.type_name(ty));
        }
        c
    }

    /// The vk.xml name whose Rust type ash defines: `FlagBits` enums become their flags type.
    pub fn type_name(&self, ty: &str) -> String {
        let t = self.resolve(ty);
        match self.categories.get(t) {
            Some(Category::Enum) if t.contains("FlagBits") => t.replace("FlagBits", "Flags"),
            _ => t.to_string(),
        }
    }

    fn select(
        &mut self,
        registry: &Registry,
        allowed: &BTreeSet<String>,
        client: &BTreeSet<String>,
    ) -> Result<(), String> {
        const FEATURES: [&str; 4] = [
            "VK_VERSION_1_0",
            "VK_VERSION_1_1",
            "VK_VERSION_1_2",
            "VK_VERSION_1_3",
        ];
        let mut enabled: BTreeSet<String> = FEATURES.iter().map(|s| s.to_string()).collect();
        enabled.extend(allowed.iter().cloned());
        enabled.extend(client.iter().cloned());
        // A require block is the ICD's own when its extension is, or when a condition names one.
        let names_client = |c: &str| {
            c.split([',', '+', '(', ')'])
                .any(|x| client.contains(x.trim()))
        };
        let satisfied = |cond: &str| -> bool {
            // `a,b` is any of; `a+b` is all of; parentheses do not occur in the pinned registry.
            cond.split(',').any(|alt| {
                alt.split('+')
                    .all(|x| enabled.contains(x.trim_matches(['(', ')'])))
            })
        };
        let mut found: BTreeSet<String> = BTreeSet::new();
        let take = |origin: &str, children: &[ExtensionChild], m: &mut Model| {
            let origin_is_client = client.contains(origin);
            for ch in children {
                let ExtensionChild::Require {
                    api,
                    extension,
                    feature,
                    depends,
                    items,
                    ..
                } = ch
                else {
                    continue;
                };
                if !is_vulkan_api(api) {
                    continue;
                }
                let conds = [extension, feature, depends];
                if conds
                    .iter()
                    .any(|c| c.as_deref().is_some_and(|c| !satisfied(c)))
                {
                    continue;
                }
                let is_client = origin_is_client
                    || conds.iter().any(|c| c.as_deref().is_some_and(names_client));
                for it in items {
                    match it {
                        InterfaceItem::Command { name, .. } => {
                            m.command_names
                                .entry(name.clone())
                                .or_default()
                                .insert(origin.to_string());
                            let canon = m.canonical_command(name);
                            let list = if is_client {
                                &mut m.client_commands
                            } else {
                                &mut m.selected_commands
                            };
                            list.entry(canon).or_insert_with(|| origin.to_string());
                        }
                        // The ICD's own structures never travel: not carried, dropped from chains.
                        InterfaceItem::Type { name, .. } if !is_client => {
                            m.selected_types.insert(m.resolve(name).to_string());
                        }
                        _ => {}
                    }
                }
            }
        };
        for child in &registry.0 {
            match child {
                RegistryChild::Feature(f)
                    if FEATURES.contains(&f.name.as_str())
                        && is_vulkan_api(&Some(f.api.clone())) =>
                {
                    take(&f.name, &f.children, self);
                }
                RegistryChild::Extensions(exts) => {
                    for e in &exts.children {
                        if !allowed.contains(&e.name) && !client.contains(&e.name) {
                            continue;
                        }
                        found.insert(e.name.clone());
                        let spec_version = e
                            .children
                            .iter()
                            .flat_map(|c| match c {
                                ExtensionChild::Require { items, .. } => items.as_slice(),
                                _ => &[],
                            })
                            .find_map(|it| match it {
                                InterfaceItem::Enum(en) if en.name.ends_with("_SPEC_VERSION") => {
                                    match &en.spec {
                                        EnumSpec::Value { value, .. } => value.parse().ok(),
                                        _ => None,
                                    }
                                }
                                _ => None,
                            })
                            .unwrap_or(1);
                        self.extensions.push((
                            e.name.clone(),
                            spec_version,
                            e.ext_type.as_deref() == Some("instance"),
                            client.contains(&e.name),
                        ));
                        take(&e.name, &e.children, self);
                    }
                }
                _ => {}
            }
        }
        // A command both carried and the ICD's own (brought in by both) is the ICD's.
        for c in self.client_commands.keys() {
            self.selected_commands.remove(c);
        }
        if let Some(missing) = allowed.iter().chain(client).find(|a| !found.contains(*a)) {
            return Err(format!("allow-listed extension {missing} is not in vk.xml"));
        }
        if let Some(v) = self.constants.get("VK_HEADER_VERSION") {
            self.header_version = v.parse().unwrap_or(0);
        }
        Ok(())
    }

    pub fn canonical_command(&self, name: &str) -> String {
        if self.commands.contains_key(name) {
            return name.to_string();
        }
        self.commands
            .values()
            .find(|c| c.aliases.iter().any(|a| a == name))
            .map(|c| c.name.clone())
            .unwrap_or_else(|| name.to_string())
    }
}

/// Command parameters vk.xml leaves to hand-written checks (`noautovalidity`) that the spec
/// lets be NULL whatever their count: the transform feedback counter buffers.
const NULL_ARRAYS: &[&str] = &["pCounterBuffers"];
