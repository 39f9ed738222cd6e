//! Zero-trust decoding: whatever bytes arrive, the server's `decode_request` (and the client's
//! `decode_reply`) must answer `Ok` or a `DecodeError`: never panic, never allocate beyond the
//! arena's limit (an exhausted arena is `TooLarge`), and name the right error for truncated
//! messages, oversized counts, foreign structure types, bad presence flags, trailing bytes and
//! handles the peer may not use.
//!
//! The valid requests that get truncated and mutated come from the same random synthesizer as
//! `codec_roundtrip.rs` (copied below, as test files cannot share a module without a third file).

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ash::vk::{self, Handle as _};
use bumpalo::Bump;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use wire::codec::{DecodeError, Decoder, Encoder};
use wire::desc::{CommandDesc, Kind, StructDesc, Ty};
use wire::generated::commands::{handwritten, COMMANDS};
use wire::generated::structs::{by_stype, ALL};
use wire::interp::{
    decode_reply, decode_request, encode_request, get_struct, put_struct, ClientObjects, Handles,
    ServerObjects, Target, MAX_OUTPUT_BYTES, MAX_PARAMS,
};

// ------------------------------------------------------------------ objects on both sides

/// The client: identity handles, rising new ids.
#[derive(Default)]
struct Client {
    next_id: std::cell::Cell<u64>,
}

impl Handles for Client {
    fn encode_handle(&self, _: vk::ObjectType, _: bool, raw: u64) -> Result<u64, DecodeError> {
        Ok(raw)
    }
    fn decode_handle(&self, _: vk::ObjectType, _: bool, id: u64) -> Result<u64, DecodeError> {
        Ok(id)
    }
}

impl ClientObjects for Client {
    fn new_id(&self) -> u64 {
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        id
    }
    fn wrap_new(&self, _: vk::ObjectType, _: bool, id: u64) -> u64 {
        id
    }
}

/// The server. `strict`: only the ids in `known` name objects, and a new object may take no id
/// in `known` (nor 0); otherwise every id is accepted.
#[derive(Default)]
struct Server {
    strict: bool,
    known: HashSet<u64>,
}

impl Server {
    fn strict(known: &[u64]) -> Self {
        Server {
            strict: true,
            known: known.iter().copied().collect(),
        }
    }
}

impl Handles for Server {
    fn encode_handle(&self, _: vk::ObjectType, _: bool, raw: u64) -> Result<u64, DecodeError> {
        Ok(raw)
    }
    fn decode_handle(&self, ty: vk::ObjectType, _: bool, id: u64) -> Result<u64, DecodeError> {
        if !self.strict || self.known.contains(&id) {
            Ok(id)
        } else {
            Err(DecodeError::UnknownHandle { ty, id })
        }
    }
}

impl ServerObjects for Server {
    fn check_new(&self, ty: vk::ObjectType, id: u64) -> Result<(), DecodeError> {
        if id == 0 || (self.strict && self.known.contains(&id)) {
            Err(DecodeError::BadNewHandle { ty, id })
        } else {
            Ok(())
        }
    }
}

/// The arena limit of the random tests: the largest output buffer and a little more.
const ARENA_LIMIT: usize = MAX_OUTPUT_BYTES + (256 << 10);

fn limited_arena(limit: usize) -> Bump {
    let arena = Bump::new();
    arena.set_allocation_limit(Some(limit));
    arena
}

/// Decodes `msg` as a request of `cmd`, turning a panic into an `Err` that names it.
fn decode_guarded(
    cmd: &CommandDesc,
    msg: &[u8],
    server: &Server,
    limit: usize,
) -> Result<Result<(), DecodeError>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let arena = limited_arena(limit);
        decode_request(&mut Decoder::new(msg), cmd, &arena, server).map(|_| ())
    }))
    .map_err(|p| {
        let what = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("decode_request panicked on {} bytes: {what}", msg.len())
    })
}

fn decode(cmd: &CommandDesc, msg: &[u8], server: &Server) -> Result<(), DecodeError> {
    decode_guarded(cmd, msg, server, ARENA_LIMIT).unwrap_or_else(|e| panic!("{}: {e}", cmd.name))
}

fn command(name: &str) -> &'static CommandDesc {
    COMMANDS
        .iter()
        .copied()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no command {name}"))
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        max_shrink_iters: 0,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Runs `case` for `cases` random inputs per command and reports every command that failed.
fn for_each_command<S: Strategy>(
    cmds: &[&'static CommandDesc],
    cases: u32,
    strategy: S,
    case: impl Fn(&'static CommandDesc, S::Value) -> Result<(), String>,
) where
    S::Value: Clone + std::fmt::Debug,
{
    let mut failures = Vec::new();
    for &cmd in cmds {
        let mut runner = TestRunner::new(config(cases));
        if let Err(e) = runner.run(&strategy, |v| case(cmd, v).map_err(TestCaseError::fail)) {
            failures.push(format!("{}: {e}", cmd.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        cmds.len(),
        failures.join("\n")
    );
}

fn fuzzed_commands() -> Vec<&'static CommandDesc> {
    COMMANDS
        .iter()
        .copied()
        .filter(|c| !(handwritten(c.id) && c.params.is_empty()))
        .collect()
}

/// A valid request for `cmd` from the synthesizer, and the ids it names for new objects.
fn valid_request(cmd: &CommandDesc, seed: u64) -> (Vec<u8>, Vec<u64>) {
    let app = Bump::new();
    let mut g = Gen::new(seed, &app);
    let mut args = [0u64; MAX_PARAMS];
    let client = Client::default();
    client.next_id.set(0x1000);
    let mut e = Encoder::new();
    let mut ids = Vec::new();
    // SAFETY: the synthesizer builds arguments as Vulkan requires.
    unsafe {
        g.args(cmd, args.as_mut_ptr() as *mut u8);
        encode_request(&mut e, cmd, &args, &client, &mut ids).unwrap();
    }
    (e.buf, ids)
}

mod support;
use support::*;

// ------------------------------------------------------------------ random and mutated input

/// Random input: plain bytes, or 32-bit words biased towards what decoders branch on (presence
/// flags, small counts, huge counts, structure types this command can reach), of any length.
fn random_message(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Seeded(seed);
    let mut m = Vec::with_capacity(len + 4);
    if r.one_in(3) {
        m.extend((0..len).map(|_| r.next() as u8));
        return m;
    }
    while m.len() < len {
        let w: u32 = match r.below(10) {
            0..=2 => 0,
            3..=4 => 1,
            5 => r.below(8) as u32,
            6 => [2, 64, 65, 0xFFFF, 0x8000_0000, u32::MAX][r.below(6) as usize],
            7 => ALL[r.below(ALL.len() as u64) as usize]
                .s_type
                .map_or(0, |s| s.as_raw() as u32),
            _ => r.next() as u32,
        };
        m.extend_from_slice(&w.to_le_bytes());
    }
    m.truncate(len);
    m
}

#[test]
fn random_bytes_never_panic_and_stay_in_the_arena() {
    for_each_command(
        &fuzzed_commands(),
        128,
        (any::<u64>(), 0usize..4096, any::<bool>()),
        |cmd, (seed, len, strict)| {
            let msg = random_message(seed, len);
            let server = if strict {
                Server::strict(&[1, 2, 3, 0x10, 0x1000])
            } else {
                Server::default()
            };
            decode_guarded(cmd, &msg, &server, ARENA_LIMIT).map(|_| ())
        },
    );
}

/// Applies 1 to 4 random edits (overwrite a word or double word with a value decoders care
/// about, flip a bit, cut, insert, delete, append).
fn mutate(msg: &mut Vec<u8>, r: &mut Seeded) {
    for _ in 0..1 + r.below(4) {
        let words = msg.len() / 4;
        match r.below(8) {
            0 | 1 if words > 0 => {
                let at = 4 * r.below(words as u64) as usize;
                let v: u32 = [
                    0,
                    1,
                    2,
                    3,
                    64,
                    65,
                    0xFFFF,
                    0x7FFF_FFFF,
                    0x8000_0000,
                    u32::MAX,
                    r.next() as u32,
                ][r.below(11) as usize];
                msg[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            2 if words > 1 => {
                let at = 4 * r.below(words as u64 - 1) as usize;
                let v: u64 = [
                    u64::MAX,
                    1 << 32,
                    1 << 40,
                    MAX_OUTPUT_BYTES as u64 + 1,
                    r.next(),
                ][r.below(5) as usize];
                msg[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            3 if !msg.is_empty() => {
                let at = r.below(msg.len() as u64) as usize;
                msg[at] ^= 1 << r.below(8);
            }
            4 => msg.truncate(r.below(msg.len() as u64 + 1) as usize),
            5 => {
                let at = 4 * r.below(words as u64 + 1) as usize;
                let ins: Vec<u8> = (0..4 * (1 + r.below(4)))
                    .map(|_| if r.one_in(2) { 0 } else { r.next() as u8 })
                    .collect();
                msg.splice(at..at, ins);
            }
            6 if words > 0 => {
                let at = 4 * r.below(words as u64) as usize;
                msg.drain(at..at + 4);
            }
            _ => msg.extend((0..1 + r.below(8)).map(|_| r.next() as u8)),
        }
    }
}

#[test]
fn mutated_valid_requests_never_panic() {
    for_each_command(
        &fuzzed_commands(),
        256,
        (any::<u64>(), any::<bool>()),
        |cmd, (seed, strict)| {
            let (mut msg, _) = valid_request(cmd, seed);
            mutate(&mut msg, &mut Seeded(seed ^ 0x5555));
            let server = if strict {
                Server::strict(&[0x1000])
            } else {
                Server::default()
            };
            decode_guarded(cmd, &msg, &server, ARENA_LIMIT).map(|_| ())
        },
    );
}

// ------------------------------------------------------------------ truncation

#[test]
fn every_strict_prefix_of_a_valid_request_is_refused() {
    for_each_command(&fuzzed_commands(), 4, any::<u64>(), |cmd, seed| {
        let (msg, _) = valid_request(cmd, seed);
        let server = Server::default();
        decode(cmd, &msg, &server).map_err(|e| {
            format!(
                "the whole valid request ({} bytes) is refused: {e:?}",
                msg.len()
            )
        })?;
        for n in 0..msg.len() {
            if let Ok(()) = decode(cmd, &msg[..n], &server) {
                return Err(format!(
                    "a {n}-byte prefix of a {}-byte request decodes",
                    msg.len()
                ));
            }
        }
        Ok(())
    });
}

#[test]
fn truncated_requests_of_common_commands_are_truncated() {
    let names = [
        "vkCreateInstance",
        "vkGetPhysicalDeviceProperties2",
        "vkCreateBuffer",
        "vkCreateDevice",
        "vkCreateGraphicsPipelines",
        "vkQueueSubmit",
        "vkUpdateDescriptorSets",
        "vkAllocateDescriptorSets",
    ];
    for name in names {
        let cmd = command(name);
        for seed in 0..8 {
            let (msg, _) = valid_request(cmd, seed);
            let server = Server::default();
            assert_eq!(
                decode(cmd, &msg, &server),
                Ok(()),
                "{name} seed {seed}: the valid request is refused"
            );
            for n in 0..msg.len() {
                match decode(cmd, &msg[..n], &server) {
                    Err(DecodeError::Truncated { .. } | DecodeError::TooMany { .. }) => {}
                    other => panic!("{name} seed {seed}: {n} of {} bytes: {other:?}", msg.len()),
                }
            }
        }
    }
}

#[test]
fn truncated_instance_create_info_is_refused() {
    for seed in 0..32 {
        let app = Bump::new();
        let mut g = Gen::new(seed, &app);
        let d = by_stype(vk::StructureType::INSTANCE_CREATE_INFO).unwrap();
        let mut e = Encoder::new();
        // SAFETY: a valid VkInstanceCreateInfo from the synthesizer; decoding into fresh arenas.
        unsafe {
            let p = g.alloc(d.size, d.align);
            g.fill(d, p, false, 0);
            put_struct(&mut e, d, p, &Client::default(), false).unwrap();
            for n in 0..=e.len() {
                let arena = limited_arena(1 << 20);
                let out = zeroed(&arena, d.size, d.align);
                let mut dc = Decoder::new(&e.buf[..n]);
                let r = get_struct(
                    &mut dc,
                    d,
                    out,
                    Target::Arena(&arena),
                    &Client::default(),
                    false,
                )
                .and_then(|_| dc.finish());
                if n == e.len() {
                    assert_eq!(r, Ok(()), "seed {seed}: the whole struct is refused");
                } else {
                    assert!(
                        matches!(
                            r,
                            Err(DecodeError::Truncated { .. } | DecodeError::TooMany { .. })
                        ),
                        "seed {seed}: {n} of {} bytes: {r:?}",
                        e.len()
                    );
                }
            }
        }
    }
}

// ------------------------------------------------------------------ targeted messages

/// Where the little-endian words `words` occur in `buf` (4-aligned); there must be exactly one.
fn find(buf: &[u8], words: &[u32]) -> usize {
    let pat: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let hits: Vec<usize> = (0..buf.len().saturating_sub(pat.len() - 1))
        .step_by(4)
        .filter(|&i| buf[i..].starts_with(&pat))
        .collect();
    assert_eq!(hits.len(), 1, "pattern {words:x?} occurs at {hits:?}");
    hits[0]
}

fn patch32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn patch64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

const DEVICE: u64 = 0x10;
const QFI: [u32; 3] = [0xA5A5_0001, 0xA5A5_0002, 0xA5A5_0003];

/// `vkCreateBuffer` with three queue families and an external-memory chain member; the new
/// buffer's id is `0x1001`.
fn create_buffer_request() -> Vec<u8> {
    let mut ext = vk::ExternalMemoryBufferCreateInfo::default()
        .handle_types(vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD);
    let info = vk::BufferCreateInfo::default()
        .size(4096)
        .usage(vk::BufferUsageFlags::STORAGE_BUFFER)
        .sharing_mode(vk::SharingMode::CONCURRENT)
        .queue_family_indices(&QFI)
        .push_next(&mut ext);
    let mut buffer = vk::Buffer::null();
    let args = [
        DEVICE,
        &info as *const _ as u64,
        0,
        &mut buffer as *mut _ as u64,
    ];
    let client = Client::default();
    client.next_id.set(0x1000);
    let mut e = Encoder::new();
    let mut ids = Vec::new();
    // SAFETY: valid arguments for vkCreateBuffer.
    unsafe { encode_request(&mut e, command("vkCreateBuffer"), &args, &client, &mut ids) }.unwrap();
    assert_eq!(ids, [0x1001]);
    e.buf
}

#[test]
fn the_targeted_requests_are_valid() {
    let cmd = command("vkCreateBuffer");
    assert!(by_stype(vk::StructureType::BUFFER_CREATE_INFO)
        .unwrap()
        .extended_by
        .contains(&vk::StructureType::EXTERNAL_MEMORY_BUFFER_CREATE_INFO));
    assert_eq!(
        decode(cmd, &create_buffer_request(), &Server::strict(&[DEVICE])),
        Ok(())
    );
}

#[test]
fn oversized_counts_are_refused_before_allocating() {
    let small = 1 << 20;
    let check = |cmd: &CommandDesc, msg: &[u8], what: &str| {
        let arena = limited_arena(small);
        let r = catch_unwind(AssertUnwindSafe(|| {
            decode_request(&mut Decoder::new(msg), cmd, &arena, &Server::default()).map(|_| ())
        }));
        match r {
            Ok(Err(DecodeError::TooMany { what: w, .. })) if w == what => {}
            other => panic!("{}: {what}: {other:?}", cmd.name),
        }
        assert!(
            arena.allocated_bytes() < 64 << 10,
            "{}: {what}: {} bytes allocated",
            cmd.name,
            arena.allocated_bytes()
        );
    };

    // An input array: queueFamilyIndexCount.
    let cmd = command("vkCreateBuffer");
    for count in [u32::MAX, 0x8000_0000, 6] {
        let mut msg = create_buffer_request();
        let at = find(&msg, &[3, 1, QFI[0]]);
        patch32(&mut msg, at, count);
        check(cmd, &msg, "pQueueFamilyIndices");
    }

    // A string array: enabledExtensionCount.
    let names = [c"VK_KHR_a".as_ptr(), c"VK_KHR_b".as_ptr()];
    let info = vk::InstanceCreateInfo::default().enabled_extension_names(&names);
    let mut instance = 0u64;
    let args = [&info as *const _ as u64, 0, &mut instance as *mut _ as u64];
    let cmd = command("vkCreateInstance");
    let mut e = Encoder::new();
    // SAFETY: valid arguments for vkCreateInstance.
    unsafe { encode_request(&mut e, cmd, &args, &Client::default(), &mut Vec::new()) }.unwrap();
    assert_eq!(decode(cmd, &e.buf, &Server::default()), Ok(()));
    let at = find(&e.buf, &[2, 1, 9]);
    patch32(&mut e.buf, at, u32::MAX);
    check(cmd, &e.buf, "ppEnabledExtensionNames");

    // A byte count (size_t): codeSize.
    let code = [0x0723_0203u32, 0x0001_0000, 0xA5A5_A5A5];
    let info = vk::ShaderModuleCreateInfo::default().code(&code);
    let mut module = 0u64;
    let args = [
        DEVICE,
        &info as *const _ as u64,
        0,
        &mut module as *mut _ as u64,
    ];
    let cmd = command("vkCreateShaderModule");
    let mut e = Encoder::new();
    // SAFETY: valid arguments for vkCreateShaderModule.
    unsafe { encode_request(&mut e, cmd, &args, &Client::default(), &mut Vec::new()) }.unwrap();
    assert_eq!(decode(cmd, &e.buf, &Server::default()), Ok(()));
    let at = find(&e.buf, &[12, 0, 1, code[0]]);
    for size in [u64::MAX, 1 << 40, u32::MAX as u64 + 1, 4096] {
        let mut msg = e.buf.clone();
        patch64(&mut msg, at, size);
        check(cmd, &msg, "pCode");
    }

    // An output array: the in/out count of vkGetPhysicalDeviceQueueFamilyProperties2.
    let cmd = command("vkGetPhysicalDeviceQueueFamilyProperties2");
    let mut props = [vk::QueueFamilyProperties2::default(); 2];
    let mut count = 2u32;
    let args = [0x20, &mut count as *mut _ as u64, props.as_mut_ptr() as u64];
    let mut e = Encoder::new();
    // SAFETY: valid arguments.
    unsafe { encode_request(&mut e, cmd, &args, &Client::default(), &mut Vec::new()) }.unwrap();
    assert_eq!(decode(cmd, &e.buf, &Server::default()), Ok(()));
    for n in [
        u32::MAX as u64,
        (MAX_OUTPUT_BYTES / size_of::<vk::QueueFamilyProperties2>()) as u64 + 1,
    ] {
        let mut msg = e.buf.clone();
        patch64(&mut msg, 8, n);
        check(cmd, &msg, "output elements");
    }
    let mut msg = e.buf.clone();
    patch64(&mut msg, 8, u32::MAX as u64 + 1);
    assert_eq!(
        decode(cmd, &msg, &Server::default()),
        Err(DecodeError::Invalid("count"))
    );

    // New handles: commandBufferCount.
    let cmd = command("vkAllocateCommandBuffers");
    let info = vk::CommandBufferAllocateInfo::default()
        .command_pool(vk::CommandPool::from_raw(0x30))
        .command_buffer_count(2);
    let mut cbs = [0u64; 2];
    let args = [DEVICE, &info as *const _ as u64, cbs.as_mut_ptr() as u64];
    let client = Client::default();
    client.next_id.set(0xB0B0_0000);
    let mut e = Encoder::new();
    // SAFETY: valid arguments.
    unsafe { encode_request(&mut e, cmd, &args, &client, &mut Vec::new()) }.unwrap();
    assert_eq!(decode(cmd, &e.buf, &Server::default()), Ok(()));
    let at = find(&e.buf, &[2, 0xB0B0_0001]);
    for n in [u32::MAX, (MAX_OUTPUT_BYTES / 8) as u32 + 1] {
        let mut msg = e.buf.clone();
        patch32(&mut msg, at, n);
        check(cmd, &msg, "output elements");
    }
    let mut msg = e.buf.clone();
    patch32(&mut msg, at, 3);
    check(cmd, &msg, "new handles");
}

#[test]
fn output_buffers_are_bounded_and_exhaustion_is_too_large() {
    let cmd = command("vkGetQueryPoolResults");
    // The application's bytes travel with the request (unwritten results keep them).
    let mut data = *b"sixteen  bytes!!";
    let args = [DEVICE, 0x40, 0, 2, 16, data.as_mut_ptr() as u64, 8, 0];
    let mut e = Encoder::new();
    // SAFETY: valid arguments.
    unsafe { encode_request(&mut e, cmd, &args, &Client::default(), &mut Vec::new()) }.unwrap();
    // queryCount, then dataSize.
    let at = find(&e.buf, &[2, 16, 0]) + 4;
    let with_size = |n: u64, body: usize| {
        let mut msg = e.buf[..at + 8].to_vec();
        patch64(&mut msg, at, n);
        msg.extend(std::iter::repeat_n(0x5A, body));
        msg.extend_from_slice(&e.buf[at + 8 + 16..]);
        msg
    };
    let server = Server::default();
    assert_eq!(decode(cmd, &e.buf, &server), Ok(()));
    let max = MAX_OUTPUT_BYTES;
    assert_eq!(decode(cmd, &with_size(max as u64, max), &server), Ok(()));
    assert!(matches!(
        decode(cmd, &with_size(max as u64 + 1, max + 4), &server),
        Err(DecodeError::TooMany { .. })
    ));
    assert!(matches!(
        decode(cmd, &with_size(u64::MAX, 16), &server),
        Err(DecodeError::TooMany { .. })
    ));
    // A size the message does not hold is refused before anything is allocated for it.
    assert!(matches!(
        decode_guarded(cmd, &with_size(4 << 20, 16), &server, 1 << 20).unwrap(),
        Err(DecodeError::Truncated { .. })
    ));
    // Within the limit of outputs and the message, but not of this arena.
    let r = decode_guarded(cmd, &with_size(4 << 20, 4 << 20), &server, 1 << 20).unwrap();
    assert_eq!(r, Err(DecodeError::TooLarge));
}

/// The server records each new handle in a `bumpalo` vector in the same arena; when the arena
/// runs out there, the answer must be `TooLarge` like every other allocation, not a panic.
#[test]
fn arena_exhaustion_while_recording_new_handles_is_too_large() {
    let cmd = command("vkAllocateCommandBuffers");
    let n: u32 = 3_000_000;
    let info = vk::CommandBufferAllocateInfo::default()
        .command_pool(vk::CommandPool::from_raw(0x30))
        .command_buffer_count(1);
    let mut cb = 0u64;
    let args = [DEVICE, &info as *const _ as u64, &mut cb as *mut _ as u64];
    let mut e = Encoder::new();
    // SAFETY: valid arguments.
    unsafe { encode_request(&mut e, cmd, &args, &Client::default(), &mut Vec::new()) }.unwrap();
    // The same request for `n` command buffers, with rising ids: 24 MiB of request, 24 MiB of
    // output slots, and 72 MiB or more of records.
    let at = find(&e.buf, &[1, 1, 0]);
    patch32(&mut e.buf, at, n);
    let mut msg = e.buf[..e.len() - 8].to_vec();
    msg.extend((1..=n as u64).flat_map(|id| id.to_le_bytes()));
    let r = decode_guarded(cmd, &msg, &Server::default(), ARENA_LIMIT);
    assert!(
        matches!(r, Ok(Err(DecodeError::TooLarge)) | Ok(Ok(()))),
        "{r:?}"
    );
}

#[test]
fn foreign_structure_types_are_refused() {
    let cmd = command("vkCreateBuffer");
    let msg = create_buffer_request();
    let st = vk::StructureType::EXTERNAL_MEMORY_BUFFER_CREATE_INFO.as_raw() as u32;
    let at = find(&msg, &[1, st]) + 4;
    for bad in [
        0x7FFF_FFF0u32,
        vk::StructureType::APPLICATION_INFO.as_raw() as u32,
        vk::StructureType::BUFFER_CREATE_INFO.as_raw() as u32,
        0,
    ] {
        let mut m = msg.clone();
        patch32(&mut m, at, bad);
        assert_eq!(
            decode(cmd, &m, &Server::default()),
            Err(DecodeError::BadStructureType(bad as i32)),
            "sType {bad:#x}"
        );
    }

    // An output chain shape naming a type the parent is not extended by, or too many.
    let cmd = command("vkGetPhysicalDeviceProperties2");
    let mut props = vk::PhysicalDeviceProperties2::default();
    let args = [0x20, &mut props as *mut _ as u64];
    let mut e = Encoder::new();
    // SAFETY: valid arguments.
    unsafe { encode_request(&mut e, cmd, &args, &Client::default(), &mut Vec::new()) }.unwrap();
    assert_eq!(e.buf[8..], 0u32.to_le_bytes());
    let mut m = e.buf.clone();
    patch32(&mut m, 8, 1);
    m.extend_from_slice(
        &(vk::StructureType::PHYSICAL_DEVICE_FEATURES_2.as_raw() as u32).to_le_bytes(),
    );
    assert_eq!(
        decode(cmd, &m, &Server::default()),
        Err(DecodeError::BadStructureType(
            vk::StructureType::PHYSICAL_DEVICE_FEATURES_2.as_raw()
        ))
    );
    // A chain may be long (vulkaninfo passes about a hundred members), but not unbounded.
    let v11 =
        (vk::StructureType::PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES.as_raw() as u32).to_le_bytes();
    let mut m = e.buf.clone();
    patch32(&mut m, 8, 64);
    m.extend((0..64).flat_map(|_| v11));
    assert_eq!(decode(cmd, &m, &Server::default()), Ok(()));
    let mut m = e.buf.clone();
    patch32(&mut m, 8, 100_000);
    m.extend((0..100_000).flat_map(|_| v11));
    assert!(matches!(
        decode(cmd, &m, &Server::default()),
        Err(DecodeError::TooMany { what: "chain", .. })
    ));

    // An input chain of 100 000 members.
    let cmd = command("vkCreateBuffer");
    let mut m = msg[..find(&msg, &[1, st])].to_vec();
    let tail = &msg[find(&msg, &[1, st]) + 12..];
    for _ in 0..100_000 {
        m.extend([1, st, 1].iter().flat_map(|w: &u32| w.to_le_bytes()));
    }
    m.extend_from_slice(tail);
    assert!(matches!(
        decode(cmd, &m, &Server::default()),
        Err(DecodeError::TooMany { what: "chain", .. })
    ));
}

#[test]
fn presence_flags_are_0_or_1() {
    let cmd = command("vkCreateBuffer");
    let msg = create_buffer_request();
    // pCreateInfo's flag right after the device, and pQueueFamilyIndices's after its count.
    for at in [8, find(&msg, &[3, 1, QFI[0]]) + 4] {
        for flag in [2, 3, 0x100, u32::MAX] {
            let mut m = msg.clone();
            patch32(&mut m, at, flag);
            assert_eq!(
                decode(cmd, &m, &Server::default()),
                Err(DecodeError::Invalid("presence flag")),
                "flag {flag} at {at}"
            );
        }
    }
}

#[test]
fn required_pointers_may_not_be_null() {
    // vkCreateInstance(NULL, NULL, &instance): the create info is required.
    let cmd = command("vkCreateInstance");
    let mut e = Encoder::new();
    e.u32(0); // pCreateInfo absent
    e.u64(5); // the new instance's id
    assert_eq!(
        decode(cmd, &e.buf, &Server::default()),
        Err(DecodeError::Missing("pCreateInfo"))
    );

    // Two extension names announced, the array of names absent.
    let mut e = Encoder::new();
    e.u32(1); // pCreateInfo present
    e.u32(0); // end of its pNext chain
    e.u32(0); // flags
    e.u32(0); // pApplicationInfo absent
    e.u32(0); // enabledLayerCount
    e.u32(0); // ppEnabledLayerNames absent
    e.u32(2); // enabledExtensionCount
    e.u32(0); // ppEnabledExtensionNames absent
    e.u64(5);
    assert_eq!(
        decode(cmd, &e.buf, &Server::default()),
        Err(DecodeError::Missing("ppEnabledExtensionNames"))
    );
    // With no names announced, an absent array is fine.
    e.buf[24..28].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(decode(cmd, &e.buf, &Server::default()), Ok(()));

    // A member the spec leaves unvalidated (used only for concurrent sharing) may be NULL.
    let cmd = command("vkCreateBuffer");
    let msg = create_buffer_request();
    let at = find(&msg, &[3, 1, QFI[0]]);
    let mut m = msg[..at].to_vec();
    m.extend_from_slice(&2u32.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&msg[at + 20..]);
    assert_eq!(decode(cmd, &m, &Server::default()), Ok(()));
}

#[test]
fn trailing_bytes_are_refused() {
    let cmd = command("vkCreateBuffer");
    for extra in 1..=9 {
        let mut m = create_buffer_request();
        m.extend(std::iter::repeat_n(0u8, extra));
        assert_eq!(
            decode(cmd, &m, &Server::default()),
            Err(DecodeError::Trailing(extra))
        );
    }
}

#[test]
fn handles_the_server_does_not_know_are_refused() {
    let cmd = command("vkDestroyBuffer");
    let args = [DEVICE, 0x77, 0];
    let mut e = Encoder::new();
    // SAFETY: valid arguments.
    unsafe { encode_request(&mut e, cmd, &args, &Client::default(), &mut Vec::new()) }.unwrap();
    assert_eq!(
        decode(cmd, &e.buf, &Server::strict(&[DEVICE, 0x77])),
        Ok(())
    );
    assert_eq!(
        decode(cmd, &e.buf, &Server::strict(&[DEVICE])),
        Err(DecodeError::UnknownHandle {
            ty: vk::ObjectType::BUFFER,
            id: 0x77
        })
    );
    assert_eq!(
        decode(cmd, &e.buf, &Server::strict(&[0x77])),
        Err(DecodeError::UnknownHandle {
            ty: vk::ObjectType::DEVICE,
            id: DEVICE
        })
    );

    // A handle inside a struct: VkBufferViewCreateInfo.buffer.
    let (cmd, e) = buffer_view_request(0x88);
    assert_eq!(
        decode(cmd, &e.buf, &Server::strict(&[DEVICE, 0x88])),
        Ok(())
    );
    assert_eq!(
        decode(cmd, &e.buf, &Server::strict(&[DEVICE])),
        Err(DecodeError::UnknownHandle {
            ty: vk::ObjectType::BUFFER,
            id: 0x88
        })
    );
}

/// vkCreateBufferView on the buffer with id `buffer`, encoded by the client.
fn buffer_view_request(buffer: u64) -> (&'static CommandDesc, Encoder) {
    let cmd = command("vkCreateBufferView");
    let info = vk::BufferViewCreateInfo::default()
        .buffer(vk::Buffer::from_raw(buffer))
        .range(vk::WHOLE_SIZE);
    let mut view = 0u64;
    let args = [
        DEVICE,
        &info as *const _ as u64,
        0,
        &mut view as *mut _ as u64,
    ];
    let mut e = Encoder::new();
    // SAFETY: valid arguments.
    unsafe { encode_request(&mut e, cmd, &args, &Client::default(), &mut Vec::new()) }.unwrap();
    (cmd, e)
}

#[test]
fn required_handles_may_not_be_null() {
    // VkBufferViewCreateInfo.buffer names the buffer the host driver reads; vkDestroyBuffer's
    // buffer is optional (destroying VK_NULL_HANDLE does nothing).
    let (cmd, e) = buffer_view_request(0);
    assert_eq!(
        decode(cmd, &e.buf, &Server::default()),
        Err(DecodeError::Invalid(
            "VK_NULL_HANDLE where an object is required"
        ))
    );
    // A parameter: vkCmdBindPipeline's pipeline (the found crash: a null command pool).
    let cmd = command("vkCmdBindPipeline");
    let mut e = Encoder::new();
    let args = [7, vk::PipelineBindPoint::COMPUTE.as_raw() as u64, 0];
    // SAFETY: plain values.
    unsafe { encode_request(&mut e, cmd, &args, &Client::default(), &mut Vec::new()) }.unwrap();
    assert_eq!(
        decode(cmd, &e.buf, &Server::default()),
        Err(DecodeError::Invalid(
            "VK_NULL_HANDLE where an object is required"
        ))
    );
    let cmd = command("vkDestroyBuffer");
    let mut e = Encoder::new();
    // SAFETY: plain values.
    unsafe {
        encode_request(
            &mut e,
            cmd,
            &[DEVICE, 0, 0],
            &Client::default(),
            &mut Vec::new(),
        )
    }
    .unwrap();
    assert_eq!(decode(cmd, &e.buf, &Server::default()), Ok(()));
}

#[test]
fn new_handle_ids_are_checked() {
    let cmd = command("vkCreateBuffer");
    let msg = create_buffer_request();
    assert_eq!(decode(cmd, &msg, &Server::strict(&[DEVICE])), Ok(()));
    assert_eq!(
        decode(cmd, &msg, &Server::strict(&[DEVICE, 0x1001])),
        Err(DecodeError::BadNewHandle {
            ty: vk::ObjectType::BUFFER,
            id: 0x1001
        })
    );
    let mut m = msg.clone();
    let at = m.len() - 8;
    patch64(&mut m, at, 0);
    assert_eq!(
        decode(cmd, &m, &Server::default()),
        Err(DecodeError::BadNewHandle {
            ty: vk::ObjectType::BUFFER,
            id: 0
        })
    );

    // Ids within one call must rise: the interpreter refuses repeats itself.
    let cmd = command("vkAllocateCommandBuffers");
    let info = vk::CommandBufferAllocateInfo::default()
        .command_pool(vk::CommandPool::from_raw(0x30))
        .command_buffer_count(3);
    let mut cbs = [0u64; 3];
    let args = [DEVICE, &info as *const _ as u64, cbs.as_mut_ptr() as u64];
    let client = Client::default();
    client.next_id.set(0x2000);
    let mut e = Encoder::new();
    // SAFETY: valid arguments.
    unsafe { encode_request(&mut e, cmd, &args, &client, &mut Vec::new()) }.unwrap();
    assert_eq!(decode(cmd, &e.buf, &Server::default()), Ok(()));
    let end = e.len();
    for (ids, bad) in [
        ([0x2001u64, 0x2001, 0x2003], 0x2001),
        ([0x2001, 0x2003, 0x2002], 0x2002),
    ] {
        let mut m = e.buf.clone();
        for (k, id) in ids.iter().enumerate() {
            patch64(&mut m, end - 24 + 8 * k, *id);
        }
        assert_eq!(
            decode(cmd, &m, &Server::default()),
            Err(DecodeError::BadNewHandle {
                ty: vk::ObjectType::COMMAND_BUFFER,
                id: bad
            })
        );
    }
}

/// Struct descriptions may not contain themselves: decoding recurses along them, so a cycle would
/// let a peer nest as deep as its message allows.
#[test]
fn struct_descriptions_are_acyclic() {
    fn visit(d: &'static StructDesc, stack: &mut Vec<&'static str>, depth: &mut usize) {
        assert!(!stack.contains(&d.name), "cycle: {stack:?} -> {}", d.name);
        stack.push(d.name);
        *depth = (*depth).max(stack.len());
        for f in d.fields {
            let ty = match f.kind {
                Kind::Value(t)
                | Kind::Object(t)
                | Kind::FixedArray(t, _)
                | Kind::Ptr { elem: t, .. }
                | Kind::Array { elem: t, .. } => t,
                Kind::PNext => {
                    for st in d.extended_by {
                        if let Some(sd) = by_stype(*st) {
                            if sd.name != d.name {
                                visit(sd, stack, depth);
                            }
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            if let Ty::Struct(sd) = ty {
                visit(sd, stack, depth);
            }
        }
        stack.pop();
    }
    let mut depth = 0;
    for d in ALL {
        visit(d, &mut Vec::new(), &mut depth);
    }
    assert!(depth < 16, "structs nest {depth} deep");
}

// ------------------------------------------------------------------ the client side

/// Decodes a reply into the application's arguments, turning a panic into an `Err`.
fn reply_guarded(
    cmd: &CommandDesc,
    msg: &[u8],
    args: &[u64],
    ids: &[u64],
) -> Result<Result<u64, DecodeError>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `args` are the application's arguments the request was encoded from.
        unsafe { decode_reply(&mut Decoder::new(msg), cmd, args, &Client::default(), ids) }
    }))
    .map_err(|_| format!("decode_reply panicked on {} bytes", msg.len()))
}

#[test]
fn hostile_replies_never_panic_nor_touch_the_applications_chains() {
    let cmds: Vec<&'static CommandDesc> = fuzzed_commands()
        .into_iter()
        .filter(|c| c.needs_reply())
        .collect();
    for_each_command(
        &cmds,
        32,
        (any::<u64>(), 0usize..1024),
        |cmd, (seed, len)| {
            let app = Bump::new();
            let mut g = Gen::new(seed, &app);
            let mut args = [0u64; MAX_PARAMS];
            let client = Client::default();
            let mut e = Encoder::new();
            let mut ids = Vec::new();
            // SAFETY: arguments built as Vulkan requires; they outlive the reply.
            unsafe {
                g.args(cmd, args.as_mut_ptr() as *mut u8);
                encode_request(&mut e, cmd, &args, &client, &mut ids).unwrap();
            }
            let msg = random_message(seed ^ 0xAAAA, len);
            let _ = reply_guarded(cmd, &msg, &args, &ids)?;
            // SAFETY: the application's memory is still alive.
            unsafe { g.check_untouched() }
        },
    );
}

#[test]
fn replies_are_held_to_the_request() {
    // A count above the capacity the application offered.
    let cmd = command("vkEnumeratePhysicalDevices");
    let mut devices = [0u64; 2];
    let mut count = 2u32;
    let args = [
        0x5,
        &mut count as *mut _ as u64,
        devices.as_mut_ptr() as u64,
    ];
    let mut reply = Encoder::new();
    reply.u64(0);
    reply.u64(3);
    for id in [0x21, 0x22, 0x23] {
        reply.u64(id);
    }
    let r = reply_guarded(cmd, &reply.buf, &args, &[]).unwrap();
    assert_eq!(
        r,
        Err(DecodeError::Invalid(
            "returned count exceeds the capacity offered"
        ))
    );
    assert_eq!(devices, [0, 0]);

    // A chain other than the one the application passed.
    let cmd = command("vkGetPhysicalDeviceProperties2");
    let mut v11 = vk::PhysicalDeviceVulkan11Properties::default();
    let mut props = vk::PhysicalDeviceProperties2 {
        p_next: &mut v11 as *mut _ as *mut std::ffi::c_void,
        ..Default::default()
    };
    let args = [0x20, &mut props as *mut _ as u64];
    let mut reply = Encoder::new();
    reply.u64(0);
    // SAFETY: a valid VkPhysicalDeviceProperties2 with its chain.
    unsafe {
        put_struct(
            &mut reply,
            by_stype(vk::StructureType::PHYSICAL_DEVICE_PROPERTIES_2).unwrap(),
            &props as *const _ as *const u8,
            &Client::default(),
            false,
        )
    }
    .unwrap();
    assert_eq!(reply_guarded(cmd, &reply.buf, &args, &[]).unwrap(), Ok(0));
    let st = vk::StructureType::PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES.as_raw() as u32;
    let at = find(&reply.buf, &[1, st]);
    let mut m = reply.buf.clone();
    patch32(
        &mut m,
        at + 4,
        vk::StructureType::PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES.as_raw() as u32,
    );
    assert_eq!(
        reply_guarded(cmd, &m, &args, &[]).unwrap(),
        Err(DecodeError::ChainMismatch {
            expected: vk::StructureType::PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES.as_raw(),
            found: vk::StructureType::PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES.as_raw()
        })
    );
    let mut m = reply.buf[..at].to_vec();
    m.extend_from_slice(&0u32.to_le_bytes());
    assert!(reply_guarded(cmd, &m, &args, &[]).unwrap().is_err());
    // The chain is as the application built it.
    assert_eq!(
        props.s_type,
        vk::StructureType::PHYSICAL_DEVICE_PROPERTIES_2
    );
    assert_eq!(props.p_next, &mut v11 as *mut _ as *mut std::ffi::c_void);
    assert!(v11.p_next.is_null());
    assert_eq!(
        v11.s_type,
        vk::StructureType::PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES
    );
}
