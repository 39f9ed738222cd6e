//! The `server_stream` target's structure-aware mutator.
//!
//! Inputs are command streams as `AIRLOCK_RECORD` writes them, so the seeds are real encodings
//! made by the generated codecs. Plain byte mutation would mostly break the framing and never
//! get past the frame reader; this mutator keeps every frame whole and mutates inside:
//! the payload of one frame (or of one frame inside a `RECORDED` batch), with libFuzzer's own
//! byte mutator; a 4-byte-aligned word set to a word from another frame (ids move between
//! frames: a handle of the wrong type, a destroyed one, a parent of another device); the
//! command id, to any generated command (a payload decoded as another command's parameters);
//! and frames duplicated, dropped or swapped (objects used after destruction, created twice).
//! A quarter of the time it mutates the raw bytes, so broken framing is tried too.

use wire::frame::RequestHeader;
use wire::generated::commands::{id, COMMANDS};
use wire::private;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic for libFuzzer's seed.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

struct Frame {
    header: RequestHeader,
    payload: Vec<u8>,
}

fn parse(bytes: &[u8]) -> Vec<Frame> {
    server::replay::frames(bytes)
        .map(|f| Frame {
            header: f.header,
            payload: f.payload.to_vec(),
        })
        .collect()
}

fn write(frames: &[Frame], out: &mut Vec<u8>) {
    for f in frames {
        let h = RequestHeader {
            size: f.payload.len() as u32,
            ..f.header
        };
        out.extend(h.to_bytes());
        out.extend(&f.payload);
    }
}

/// Mutates `payload` in place with libFuzzer's mutator, growing it by at most `room` bytes.
fn mutate_bytes(
    payload: &mut Vec<u8>,
    room: usize,
    m: &mut dyn FnMut(&mut [u8], usize, usize) -> usize,
) {
    let size = payload.len();
    let max = size + room.min(256);
    if max == 0 {
        // libFuzzer's mutator asserts a non-empty buffer (found by the fuzzer itself).
        return;
    }
    payload.resize(max, 0);
    let n = m(payload, size, max);
    payload.truncate(n.min(max));
}

fn word_at(p: &[u8], rng: &mut Rng) -> Option<usize> {
    (p.len() >= 8).then(|| rng.below((p.len() - 8) / 4 + 1) * 4)
}

/// One structure-aware mutation of `data[..size]`; returns the new size (at most `max_size`).
/// `m` is libFuzzer's byte mutator (`fuzzer_mutate`), passed in so that this file builds and
/// runs without libFuzzer too.
pub fn mutate(
    data: &mut [u8],
    size: usize,
    max_size: usize,
    seed: u32,
    m: &mut dyn FnMut(&mut [u8], usize, usize) -> usize,
) -> usize {
    let mut rng = Rng(u64::from(seed) | 1 << 40);
    let mut frames = parse(&data[..size]);
    if frames.is_empty() || rng.below(4) == 0 {
        return m(data, size, max_size);
    }
    let room = max_size.saturating_sub(size);
    // Rarely a shader module: the target executes only the seeds' SPIR-V (`fuzz_skips`).
    let mut i = rng.below(frames.len());
    for _ in 0..4 {
        if frames[i].header.command != id::vkCreateShaderModule {
            break;
        }
        i = rng.below(frames.len());
    }
    match rng.below(8) {
        0..=2 => {
            // Inside a RECORDED batch, usually one of its frames.
            let f = &mut frames[i];
            let inner = if f.header.command == private::RECORDED
                && f.payload.len() > 8
                && rng.below(4) != 0
            {
                let mut inner = parse(&f.payload[8..]);
                if inner.is_empty() {
                    None
                } else {
                    let j = rng.below(inner.len());
                    mutate_bytes(&mut inner[j].payload, room, m);
                    Some(inner)
                }
            } else {
                None
            };
            match inner {
                Some(inner) => {
                    let mut p = f.payload[..8].to_vec();
                    write(&inner, &mut p);
                    f.payload = p;
                }
                None => mutate_bytes(&mut f.payload, room, m),
            }
        }
        3 | 4 => {
            // A word from another frame, where ids and counts travel.
            let j = rng.below(frames.len());
            if let (Some(src), Some(dst)) = (
                word_at(&frames[j].payload, &mut rng),
                word_at(&frames[i].payload, &mut rng),
            ) {
                let w: [u8; 8] = frames[j].payload[src..src + 8].try_into().expect("8 bytes");
                frames[i].payload[dst..dst + 8].copy_from_slice(&w);
            }
        }
        5 => frames[i].header.command = rng.below(COMMANDS.len()) as u32,
        6 => {
            let f = Frame {
                header: frames[i].header,
                payload: frames[i].payload.clone(),
            };
            let at = rng.below(frames.len() + 1);
            frames.insert(at, f);
        }
        _ => {
            if rng.below(2) == 0 && frames.len() > 1 {
                frames.remove(i);
            } else {
                let j = rng.below(frames.len());
                frames.swap(i, j);
            }
        }
    }
    let mut out = Vec::with_capacity(size + 64);
    write(&frames, &mut out);
    if out.len() > max_size {
        return m(data, size, max_size);
    }
    data[..out.len()].copy_from_slice(&out);
    out.len()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_framing() {
        let mut s = Vec::new();
        for c in [1u32, 2, 3] {
            s.extend(
                wire::frame::RequestHeader {
                    size: 16,
                    command: c,
                    slot: 0,
                    flags: 0,
                }
                .to_bytes(),
            );
            s.extend([c as u8; 16]);
        }
        let mut buf = s.clone();
        buf.resize(4096, 0);
        let mut flip = |d: &mut [u8], size: usize, _max: usize| {
            if let Some(b) = d.first_mut() {
                *b ^= 0x55;
            }
            size
        };
        for seed in 0..200 {
            let n = super::mutate(&mut buf, s.len(), 4096, seed, &mut flip);
            assert!(n <= 4096);
        }
    }

    #[test]
    fn never_asks_for_an_empty_mutation() {
        // Frames with empty payloads and no room to grow: libFuzzer's mutator asserts
        // `MaxSize > 0`, so it must not be called with 0 (found by the fuzzer).
        let mut s = Vec::new();
        for c in [1u32, 2] {
            s.extend(
                wire::frame::RequestHeader {
                    size: 0,
                    command: c,
                    slot: 0,
                    flags: 0,
                }
                .to_bytes(),
            );
        }
        let mut strict = |_: &mut [u8], size: usize, max: usize| {
            assert!(max > 0, "mutator called with MaxSize 0");
            size
        };
        for seed in 0..500 {
            let mut buf = s.clone();
            let n = super::mutate(&mut buf, s.len(), s.len(), seed, &mut strict);
            assert!(n <= s.len());
        }
    }
}
