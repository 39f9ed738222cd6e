//! The command-stream decoder and dispatch against the real host driver (lavapipe):
//! every input is a recorded command stream played against a fresh server state.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};

fuzz_target!(|data: &[u8]| airlock_fuzz::run_stream(data));

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    airlock_fuzz::stream::mutate(data, size, max_size, seed, &mut |d, s, m| {
        libfuzzer_sys::fuzzer_mutate(d, s, m)
    })
});
