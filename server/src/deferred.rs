//! Pipeline layouts destroyed while command buffers record.
//!
//! Since Vulkan 1.3 (maintenance4) an application may destroy a pipeline layout right after
//! recording commands that name it. Airlock ships recorded commands later, in batches, so the
//! server would meet the layout after it is gone. While any command buffer records, the server
//! therefore postpones destroying pipeline layouts until none does.

use parking_lot::Mutex;
use std::collections::HashSet;

/// A pipeline layout waiting to be destroyed: client id, host handle, host device.
pub type Layout = (u64, u64, u64);

#[derive(Default)]
pub struct Deferred {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Host command buffers between begin and end (or reset, or free).
    recording: HashSet<u64>,
    layouts: Vec<Layout>,
}

impl Deferred {
    pub fn begin(&self, command_buffer: u64) {
        self.state.lock().recording.insert(command_buffer);
    }

    /// The command buffers stopped recording; the layouts that can go now.
    pub fn end(&self, command_buffers: impl IntoIterator<Item = u64>) -> Vec<Layout> {
        let mut s = self.state.lock();
        for c in command_buffers {
            s.recording.remove(&c);
        }
        if s.recording.is_empty() {
            std::mem::take(&mut s.layouts)
        } else {
            Vec::new()
        }
    }

    /// Postpones destroying `layout` if a command buffer records; false: destroy it now.
    pub fn defer(&self, layout: Layout) -> bool {
        let mut s = self.state.lock();
        if s.recording.is_empty() {
            return false;
        }
        s.layouts.push(layout);
        true
    }
}
