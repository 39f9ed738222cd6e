//! The result bytes of a scenario: named fields, each `name NUL length(u64 LE) bytes`, in the
//! order the scenario adds them. Only deterministic values go in, so two conformant runs of the
//! same scenario produce the same bytes.

use bytemuck::NoUninit;

#[derive(Default, Debug)]
pub struct Report {
    bytes: Vec<u8>,
}

impl Report {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn bytes(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.bytes
            .extend_from_slice(&(data.len() as u64).to_le_bytes());
        self.bytes.extend_from_slice(data);
        self
    }

    /// Plain-old-data values in the machine's (little-endian) byte order.
    pub fn values<T: NoUninit>(&mut self, name: &str, data: &[T]) -> &mut Self {
        self.bytes(name, bytemuck::cast_slice(data))
    }

    pub fn u64(&mut self, name: &str, value: u64) -> &mut Self {
        self.values(name, &[value])
    }

    pub fn i32(&mut self, name: &str, value: i32) -> &mut Self {
        self.values(name, &[value])
    }

    pub fn flag(&mut self, name: &str, value: bool) -> &mut Self {
        self.bytes(name, &[value as u8])
    }

    pub fn text(&mut self, name: &str, value: &str) -> &mut Self {
        self.bytes(name, value.as_bytes())
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}
