//! Request decoding and reply write-back of every generated command, without a driver.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| airlock_fuzz::decoder::run(data));
