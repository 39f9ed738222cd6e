//! Message framing on the rings.
//!
//! A request is a 16-byte header (`size`, `command`, `slot`, `flags`) and `size` bytes of
//! encoded parameters. A reply, written into the ring of the slot the request named, is an
//! 8-byte header (`size`, `status`) and `size` bytes.

use crate::codec::DecodeError;

pub const REQUEST_HEADER: usize = 16;
pub const REPLY_HEADER: usize = 8;
/// The caller waits for a reply on `slot`.
pub const FLAG_REPLY: u32 = 1;
/// Largest message either side accepts.
pub const MAX_MESSAGE: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub size: u32,
    pub command: u32,
    pub slot: u32,
    pub flags: u32,
}

impl RequestHeader {
    pub fn to_bytes(&self) -> [u8; REQUEST_HEADER] {
        let mut b = [0u8; REQUEST_HEADER];
        b[0..4].copy_from_slice(&self.size.to_le_bytes());
        b[4..8].copy_from_slice(&self.command.to_le_bytes());
        b[8..12].copy_from_slice(&self.slot.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b
    }
    pub fn from_bytes(b: &[u8; REQUEST_HEADER]) -> Result<Self, DecodeError> {
        let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let h = RequestHeader {
            size: w(0),
            command: w(4),
            slot: w(8),
            flags: w(12),
        };
        if h.size as usize > MAX_MESSAGE {
            return Err(DecodeError::TooLarge);
        }
        Ok(h)
    }
    pub fn wants_reply(&self) -> bool {
        self.flags & FLAG_REPLY != 0
    }
}

/// How the server answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    Ok = 0,
    /// The request could not be decoded; the body is a UTF-8 message.
    BadRequest = 1,
    /// The host driver lacks the command.
    Unsupported = 2,
}

impl Status {
    pub fn from_u32(v: u32) -> Option<Status> {
        match v {
            0 => Some(Status::Ok),
            1 => Some(Status::BadRequest),
            2 => Some(Status::Unsupported),
            _ => None,
        }
    }
}

pub fn reply_header(size: u32, status: Status) -> [u8; REPLY_HEADER] {
    let mut b = [0u8; REPLY_HEADER];
    b[0..4].copy_from_slice(&size.to_le_bytes());
    b[4..8].copy_from_slice(&(status as u32).to_le_bytes());
    b
}

pub fn parse_reply_header(b: &[u8; REPLY_HEADER]) -> Result<(usize, Status), DecodeError> {
    let size = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let status = Status::from_u32(u32::from_le_bytes([b[4], b[5], b[6], b[7]]))
        .ok_or(DecodeError::Invalid("reply status"))?;
    if size > MAX_MESSAGE {
        return Err(DecodeError::TooLarge);
    }
    Ok((size, status))
}
