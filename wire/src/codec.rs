//! Byte-level encoding: every value is a little-endian multiple of 4 bytes.

use thiserror::Error;

/// Why a message could not be decoded. The caller adds the command name when it logs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("message truncated: needed {needed} bytes, {left} left")]
    Truncated { needed: usize, left: usize },
    #[error("{what} count {count} exceeds what the message can hold")]
    TooMany { what: &'static str, count: u64 },
    #[error("unknown command id {0}")]
    UnknownCommand(u32),
    #[error("unknown {ty:?} handle id {id}")]
    UnknownHandle { ty: ash::vk::ObjectType, id: u64 },
    #[error("handle id {id} for a new {ty:?} is zero, in use or was used before")]
    BadNewHandle { ty: ash::vk::ObjectType, id: u64 },
    #[error("structure type {0} is not allowed here")]
    BadStructureType(i32),
    #[error("returned chain holds structure type {found} where the request had {expected}")]
    ChainMismatch { expected: i32, found: i32 },
    #[error("required pointer {0} is NULL")]
    Missing(&'static str),
    #[error("invalid value in {0}")]
    Invalid(&'static str),
    #[error("{0} bytes left over after the last parameter")]
    Trailing(usize),
    #[error("command needs more memory than a message may use")]
    TooLarge,
}

/// Grows a byte buffer; reused between messages so steady state allocates nothing.
#[derive(Default, Debug)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn clear(&mut self) {
        self.buf.clear();
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    #[inline]
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Raw bytes, padded to a multiple of 4.
    #[inline]
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
        let pad = (4 - b.len() % 4) % 4;
        self.buf.extend_from_slice(&[0u8; 3][..pad]);
    }
    /// A length-prefixed byte string.
    pub fn blob(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.bytes(b);
    }
}

/// Reads a message that has already been copied out of shared memory.
#[derive(Debug)]
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let left = self.remaining();
        if n > left {
            return Err(DecodeError::Truncated { needed: n, left });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    #[inline]
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    #[inline]
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// `n` raw bytes and their padding.
    #[inline]
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let padded = n.checked_add(3).ok_or(DecodeError::TooLarge)? & !3;
        if padded > self.remaining() {
            return Err(DecodeError::Truncated {
                needed: padded,
                left: self.remaining(),
            });
        }
        let s = self.take(padded)?;
        Ok(&s[..n])
    }
    pub fn blob(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.bytes(n)
    }
    /// Checks that `count` elements of at least `min_size` bytes each can still be in the message,
    /// so no count from a peer makes anyone allocate more than the peer actually sent.
    pub fn check_count(
        &self,
        what: &'static str,
        count: u64,
        min_size: usize,
    ) -> Result<usize, DecodeError> {
        let need = count.checked_mul(min_size.max(1) as u64);
        match need {
            Some(n) if n <= self.remaining() as u64 => Ok(count as usize),
            _ => Err(DecodeError::TooMany { what, count }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut e = Encoder::new();
        e.u32(7);
        e.u64(u64::MAX - 1);
        e.blob(b"hello");
        let mut d = Decoder::new(&e.buf);
        assert_eq!(d.u32(), Ok(7));
        assert_eq!(d.u64(), Ok(u64::MAX - 1));
        assert_eq!(d.blob(), Ok(&b"hello"[..]));
        assert!(d.finish().is_ok());
        let mut d = Decoder::new(&e.buf[..10]);
        d.u32().unwrap();
        assert!(matches!(d.u64(), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn counts_are_bounded_by_the_message() {
        let d = Decoder::new(&[0u8; 16]);
        assert!(d.check_count("x", 4, 4).is_ok());
        assert!(d.check_count("x", 5, 4).is_err());
        assert!(d.check_count("x", u64::MAX, 4).is_err());
        let mut d = Decoder::new(&[0xff; 8]);
        assert!(d.blob().is_err());
    }
}
