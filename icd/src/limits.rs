//! The server's object limit (`AIRLOCK_MAX_OBJECTS`, `server/src/limits.rs`), seen from the
//! client: a creation the ICD posts without waiting cannot hand the limit's
//! `VK_ERROR_OUT_OF_HOST_MEMORY` back to the application, so it is posted only with room the
//! server set aside for it beforehand (`wire::private::CREDIT`); without room, it is a call.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// How many objects a device's first request asks room for; each later one asks twice as many
/// as the one before, up to [`MOST_WANTED`]: a device that makes a few fences holds little room
/// the server keeps from the others, and one that allocates thousands of descriptor sets a
/// frame soon asks rarely. (The server grants at most half the room it has left.)
const FIRST_WANTED: u64 = 64;
const MOST_WANTED: u64 = 1 << 16;

/// After a grant short of what was asked, this many creations are calls before the next
/// request: near the limit, asking before every creation would double its round trips.
const PAUSE: u32 = 64;

/// The room a device holds for posted creations (kept with the device: its server's limit
/// counts every device's grants).
#[derive(Default)]
pub struct Credit {
    left: AtomicU64,
    pause: AtomicU32,
    /// Requests made so far.
    asked: AtomicU32,
}

impl Credit {
    /// Takes room for `n` posted creations, asking the server through `ask` (the number
    /// wanted, the number granted or `None` when the request failed) when too little is left.
    /// False: the creation must be a call.
    pub fn take(&self, n: u64, ask: impl FnOnce(u64) -> Option<u64>) -> bool {
        if self.try_take(n) {
            return true;
        }
        if self
            .pause
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| p.checked_sub(1))
            .is_ok()
        {
            return false;
        }
        let asked = self.asked.fetch_add(1, Ordering::AcqRel).min(16);
        let wanted = n.max((FIRST_WANTED << asked).min(MOST_WANTED));
        let granted = ask(wanted).unwrap_or(0);
        self.left.fetch_add(granted, Ordering::AcqRel);
        if granted < wanted {
            self.pause.store(PAUSE, Ordering::Release);
        }
        self.try_take(n)
    }

    fn try_take(&self, n: u64) -> bool {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| l.checked_sub(n))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_asked_for_when_short_and_not_again_for_a_while_after_a_short_grant() {
        let c = Credit::default();
        let mut asked = Vec::new();
        assert!(c.take(3, |w| {
            asked.push(w);
            Some(10)
        }));
        assert_eq!(asked, vec![FIRST_WANTED]);
        assert!(c.take(7, |_| panic!("7 of 10 are left")));
        // Short of room, and the last grant was short: calls for a while.
        for _ in 0..PAUSE {
            assert!(!c.take(1, |_| panic!("paused")));
        }
        assert!(c.take(2, |w| {
            asked.push(w);
            Some(w)
        }));
        assert_eq!(asked[1], 2 * FIRST_WANTED, "twice as many each time");
        assert!(
            !c.take(MOST_WANTED, |_| Some(0)),
            "more than is left and granted"
        );
        assert!(!c.take(MOST_WANTED, |_| panic!("paused after a refusal")));
        assert!(c.take(1, |_| panic!("what is left is taken")));
        let failed = Credit::default();
        assert!(!failed.take(1, |_| None));
    }

    #[test]
    fn requests_grow_to_a_most() {
        let c = Credit::default();
        let mut asked = Vec::new();
        for _ in 0..20 {
            // Each takes more than is left: one request each.
            let n = c.left.load(Ordering::Acquire) + 1;
            assert!(c.take(n, |w| {
                asked.push(w);
                Some(w)
            }));
        }
        assert_eq!(
            asked[..3],
            [FIRST_WANTED, 2 * FIRST_WANTED, 4 * FIRST_WANTED]
        );
        assert_eq!(*asked.last().unwrap(), MOST_WANTED);
    }
}
