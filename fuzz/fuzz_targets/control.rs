//! The handshake, control messages, channel attach and frame headers: what the server and the
//! ICD take from their peer outside the command stream.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| airlock_fuzz::control::run(data));
