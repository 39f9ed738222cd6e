//! Failures of a scenario: a Vulkan call that returned an error, or a result that differs from
//! what the CPU computed.

use ash::vk;
use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// `call` returned `result`.
    Vulkan {
        call: &'static str,
        result: vk::Result,
    },
    /// The GPU's result differs from the CPU's expectation.
    Mismatch(String),
    /// The driver lacks something the scenario needs.
    Unsupported(String),
    /// The Vulkan loader could not be loaded.
    Loader(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Vulkan { call, result } => {
                write!(f, "{call} failed: {result:?} ({})", result.as_raw())
            }
            Error::Mismatch(m) => write!(f, "wrong result: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Loader(m) => write!(f, "loading the Vulkan loader: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Names the Vulkan call behind a `VkResult`, so a failure says which call it was.
pub trait Check<T> {
    fn check(self, call: &'static str) -> Result<T>;
}

impl<T> Check<T> for std::result::Result<T, vk::Result> {
    fn check(self, call: &'static str) -> Result<T> {
        self.map_err(|result| Error::Vulkan { call, result })
    }
}

/// Pipeline creation returns the partially created pipelines beside the error.
impl<T> Check<T> for std::result::Result<T, (T, vk::Result)> {
    fn check(self, call: &'static str) -> Result<T> {
        self.map_err(|(_, result)| Error::Vulkan { call, result })
    }
}

/// `Err(Mismatch)` unless `condition` holds.
pub fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<()> {
    if condition {
        Ok(())
    } else {
        Err(Error::Mismatch(message()))
    }
}

/// Compares every element with `expected(index)`; the error names the first wrong one and how
/// many are wrong.
pub fn check_elements<T: PartialEq + fmt::Debug>(
    what: &str,
    actual: &[T],
    expected: impl Fn(usize) -> T,
) -> Result<()> {
    let mut first = None;
    let mut wrong = 0usize;
    for (i, a) in actual.iter().enumerate() {
        let e = expected(i);
        if *a != e {
            wrong += 1;
            first.get_or_insert(format!("[{i}] is {a:?}, expected {e:?}"));
        }
    }
    match first {
        None => Ok(()),
        Some(f) => Err(Error::Mismatch(format!(
            "{what}: {wrong} of {} elements wrong, first {f}",
            actual.len()
        ))),
    }
}
