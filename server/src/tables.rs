//! The host's dispatch tables: one per host instance and device, each function resolved on
//! first use, so that a call is routed to the host through the object it is made on.

use crate::dispatch::{Pfn, Server};
use crate::objects::HostHandle;
use ash::vk;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::{Arc, OnceLock};
use wire::desc::{CommandDesc, Level};
use wire::generated::commands::COMMANDS;

/// The host functions of one instance or device, resolved on first use.
pub struct Table {
    pub instance: vk::Instance,
    pub device: Option<(vk::Device, vk::PFN_vkGetDeviceProcAddr)>,
    fns: Vec<OnceLock<Option<Pfn>>>,
    /// An instance's physical devices' host device extensions, by host handle
    /// (`device::host_extensions`).
    pub device_extensions: Mutex<HashMap<u64, Arc<[vk::ExtensionProperties]>>>,
}

impl Server {
    pub fn table(&self, owner: HostHandle) -> Option<Arc<Table>> {
        self.tables.read().get(&owner.0).cloned()
    }

    /// Serves calls made on `owner` (a host instance or device) from now on.
    pub fn add_table(
        &self,
        owner: HostHandle,
        instance: vk::Instance,
        device: Option<(vk::Device, vk::PFN_vkGetDeviceProcAddr)>,
    ) {
        let fns = (0..COMMANDS.len()).map(|_| OnceLock::new()).collect();
        let t = Table {
            instance,
            device,
            fns,
            device_extensions: Mutex::default(),
        };
        self.tables.write().insert(owner.0, Arc::new(t));
    }

    pub fn remove_table(&self, owner: HostHandle) {
        self.tables.write().remove(&owner.0);
    }

    /// The tables of the devices of host instance `instance`.
    pub fn devices_of(&self, instance: vk::Instance) -> Vec<(HostHandle, Arc<Table>)> {
        let tables = self.tables.read();
        let devices = tables
            .iter()
            .filter(|(_, t)| t.device.is_some() && t.instance == instance);
        devices
            .map(|(h, t)| (HostHandle(*h), Arc::clone(t)))
            .collect()
    }

    /// The device table of host device `device`.
    pub fn device_table(&self, device: HostHandle) -> Option<Arc<Table>> {
        self.table(device).filter(|t| t.device.is_some())
    }

    pub fn resolve(&self, cmd: &CommandDesc, table: Option<&Table>) -> Option<Pfn> {
        let name = || CString::new(cmd.name).ok();
        let Some(t) = table else {
            return self.host.instance_proc(vk::Instance::null(), &name()?);
        };
        // Resolved once per instance or device; later calls only read the table.
        *t.fns[cmd.id as usize].get_or_init(|| {
            let name = name()?;
            match (cmd.level, t.device) {
                (Level::Device, Some((dev, gdpa))) => unsafe { gdpa(dev, name.as_ptr()) },
                _ => self.host.instance_proc(t.instance, &name),
            }
        })
    }
}
