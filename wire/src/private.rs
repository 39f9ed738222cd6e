//! Requests Airlock adds to the command stream beside Vulkan's own commands.
//!
//! Their ids sit far above any generated command id, so the two ranges never meet.

/// First id of the private range.
pub const FIRST: u32 = 0xFFFF_0000;

/// Client → server, with a reply: "give me the memory of device memory `id`".
/// Request: `u64` memory id. Reply: `i32` VkResult, `u64` mapping size. On success the server
/// has sent [`crate::control::ControlMsg::MemoryFd`] with the memfd over the control socket
/// before it writes the reply.
pub const MAP_MEMORY: u32 = FIRST + 1;

/// Client → server, no reply: commands recorded into one command buffer.
/// Payload: `u64` command buffer id, then whole request frames (header and parameters) of
/// `vkCmd*` commands on that command buffer, in recording order.
pub const RECORDED: u32 = FIRST + 2;

/// Client → server, with a reply: "the memfd I have just sent with
/// [`crate::control::ControlMsg::ImportMemory`] is for the next `vkAllocateMemory` that imports
/// an opaque fd". Request: empty. Reply: `i32` VkResult. The client sends the descriptor before
/// the request and holds both, and the allocation, under one lock, so the server pairs them
/// without a token.
pub const IMPORT_MEMORY: u32 = FIRST + 3;

/// Client → server, with a reply: "give me the feedback region" ([`crate::feedback`]).
/// Request: empty. Reply: `i32` VkResult. On success the server has sent
/// [`crate::control::ControlMsg::Feedback`] with the region's memfd before it writes the reply.
pub const FEEDBACK: u32 = FIRST + 4;

/// Client → server, no reply: "report the status of object `id` in feedback slot `slot`".
/// Payload: `u64` object id, `u32` slot, `u32` [`crate::feedback::Kind`]. A slot bound to a
/// live object, an id of another kind or a slot out of range is refused with a log line; the
/// client then never sees its epoch and keeps asking the server.
pub const WATCH: u32 = FIRST + 5;

/// Client → server, with a reply: "set aside room for `n` objects I will create on device `id`
/// without waiting". Request: `u64` device id, `u64` wanted. Reply: `u64` granted, at most the
/// wanted number; what a destroyed device had not spent is given back. The server
/// keeps the granted objects out of the room its object limit leaves for other creations until
/// posted creations spend them; a posted creation it granted room for therefore cannot meet
/// the limit, and one it did not is checked against the limit as a call would be.
pub const CREDIT: u32 = FIRST + 6;

/// The name of the memfds behind device memory, which the client recognises opaque fds by.
pub const MEMORY_MEMFD: &str = "airlock-memory";

/// Whether `id` names one of the requests above.
pub fn is_private(id: u32) -> bool {
    matches!(
        id,
        MAP_MEMORY | RECORDED | IMPORT_MEMORY | FEEDBACK | WATCH | CREDIT
    )
}
