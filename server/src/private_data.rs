//! Private data: the ICD keeps it itself and never sends it. A client that sends it anyway
//! names its object by id, in a table its object type chooses.

use crate::dispatch::{answer, set_arg, Before, Hook, Server, HOST};
use crate::generated::views::{GetPrivateData, SetPrivateData};
use crate::objects::ClientId;
use ash::vk;
use tracing::warn;
use wire::generated::commands::id;

/// # Safety
/// `args` are the decoded arguments of `vkSetPrivateData` or `vkGetPrivateData`.
pub unsafe fn before(server: &Server, args: &mut [u64], h: &Hook) -> Before {
    let (ty, object, slot) = if h.cmd.id == id::vkSetPrivateData {
        let v = SetPrivateData::of(args);
        (
            v.object_type,
            v.object_handle,
            SetPrivateData::OBJECT_HANDLE,
        )
    } else {
        let v = GetPrivateData::of(args);
        (
            v.object_type,
            v.object_handle,
            GetPrivateData::OBJECT_HANDLE,
        )
    };
    match server.objects.lookup(ty, ClientId(object)) {
        Ok(e) => {
            set_arg(args, slot, e.host.0);
            HOST
        }
        Err(e) => {
            warn!("{}: {e}", h.cmd.name);
            answer(vk::Result::ERROR_OUT_OF_HOST_MEMORY)
        }
    }
}
