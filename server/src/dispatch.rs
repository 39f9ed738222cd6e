//! Executes one decoded command against the host driver.
//!
//! Almost every command takes the generic path: decode the request into an arena, resolve the
//! host's function through the dispatch table of the object it is called on, call it, bind the
//! objects it created, encode the reply. The few decisions Airlock makes itself (which
//! extensions the client sees, the driver identity, dispatch tables) are hooks around it here.

use crate::generated::calls;
use crate::host::HostDriver;
use crate::objects::{CallObjects, Objects};
use ash::vk;
use bumpalo::Bump;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::sync::{Arc, OnceLock};
use thiserror::Error;
use wire::codec::{DecodeError, Decoder, Encoder};
use wire::desc::{CommandDesc, Kind, Level, Ret, Ty};
use wire::generated::commands::{id, COMMANDS, EXTENSIONS};
use wire::interp;

#[derive(Debug, Error)]
pub enum ExecError {
    #[error("{cmd}: {err}")]
    Decode { cmd: &'static str, err: DecodeError },
    #[error("{0}: the host driver does not provide it")]
    Unsupported(&'static str),
}

type Pfn = unsafe extern "system" fn();

/// The host functions of one instance or device, resolved on first use.
struct Table {
    instance: vk::Instance,
    device: Option<(vk::Device, vk::PFN_vkGetDeviceProcAddr)>,
    fns: Vec<OnceLock<Option<Pfn>>>,
}

pub struct Server {
    pub host: HostDriver,
    pub objects: Objects,
    /// Extensions both sides carry: name → the lower spec version.
    pub carried: HashMap<String, u32>,
    tables: RwLock<HashMap<u64, Arc<Table>>>,
}

impl Server {
    pub fn new(host: HostDriver, client_extensions: &[wire::control::ExtensionInfo]) -> Server {
        let carried = client_extensions
            .iter()
            .filter_map(|c| {
                EXTENSIONS
                    .iter()
                    .find(|e| e.name == c.name)
                    .map(|e| (c.name.clone(), c.spec_version.min(e.spec_version)))
            })
            .collect();
        Server {
            host,
            objects: Objects::default(),
            carried,
            tables: RwLock::new(HashMap::new()),
        }
    }

    fn table(&self, owner: u64) -> Option<Arc<Table>> {
        self.tables.read().get(&owner).cloned()
    }

    fn resolve(&self, cmd: &CommandDesc, table: Option<&Table>) -> Option<Pfn> {
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

    /// The host instance or device whose table serves a call whose first argument is `id`.
    fn owner_of(&self, id: u64) -> u64 {
        match self.objects.get(id) {
            Some(e) if e.ty == vk::ObjectType::INSTANCE || e.ty == vk::ObjectType::DEVICE => e.host,
            Some(e) => e.owner,
            None => 0,
        }
    }

    /// Host instance extensions both sides carry, with the lowest spec version of the three.
    pub fn instance_extensions(&self) -> Vec<vk::ExtensionProperties> {
        let f = self.host.instance_proc(
            vk::Instance::null(),
            c"vkEnumerateInstanceExtensionProperties",
        );
        let Some(f) = f else { return Vec::new() };
        let f: vk::PFN_vkEnumerateInstanceExtensionProperties = unsafe { std::mem::transmute(f) };
        let all = unsafe { enumerate(|n, p| f(std::ptr::null(), n, p)) };
        self.filter_extensions(all, true)
    }

    fn filter_extensions(
        &self,
        all: Vec<vk::ExtensionProperties>,
        instance: bool,
    ) -> Vec<vk::ExtensionProperties> {
        all.into_iter()
            .filter_map(|mut p| {
                let name = p.extension_name_as_c_str().ok()?.to_str().ok()?;
                let ours = EXTENSIONS
                    .iter()
                    .find(|e| e.name == name && e.instance == instance)?;
                let theirs = *self.carried.get(name)?;
                p.spec_version = p.spec_version.min(theirs).min(ours.spec_version);
                Some(p)
            })
            .collect()
    }

    /// Executes one request and encodes its reply into `out`.
    pub fn execute(
        &self,
        cmd: &'static CommandDesc,
        payload: &[u8],
        arena: &Bump,
        out: &mut Encoder,
    ) -> Result<(), ExecError> {
        let derr = |err| ExecError::Decode { cmd: cmd.name, err };
        let first_id = if cmd.level == Level::Global {
            0
        } else {
            let b = payload.get(..8).ok_or(derr(DecodeError::Truncated {
                needed: 8,
                left: payload.len(),
            }))?;
            u64::from_le_bytes(b.try_into().unwrap())
        };
        let owner = self.owner_of(first_id);
        let table = self.table(owner);
        if cmd.level != Level::Global && table.is_none() {
            return Err(derr(DecodeError::UnknownHandle {
                ty: vk::ObjectType::UNKNOWN,
                id: first_id,
            }));
        }
        let cx = CallObjects {
            objects: &self.objects,
            owner,
        };
        let mut dc = Decoder::new(payload);
        let call = interp::decode_request(&mut dc, cmd, arena, &cx).map_err(derr)?;
        let ret = if cmd.id == id::vkEnumerateDeviceExtensionProperties {
            self.device_extensions(&call.args, table.as_deref())
        } else {
            let fp = self
                .resolve(cmd, table.as_deref())
                .ok_or(ExecError::Unsupported(cmd.name))?;
            // SAFETY: `fp` is the host's function for `cmd`; the arguments were decoded for it,
            // with every handle translated and every pointer into `arena`.
            unsafe { calls::call(cmd.id, fp, &call.args) }
                .ok_or(ExecError::Unsupported(cmd.name))?
        };
        let ok = cmd.ret != Ret::Result || (ret as i64) >= 0;
        if ok {
            for n in call.new_handles.iter() {
                // SAFETY: the slot is arena memory the driver wrote the new handle into.
                let host = unsafe { *n.slot };
                let own = if n.ty == vk::ObjectType::INSTANCE || n.ty == vk::ObjectType::DEVICE {
                    host
                } else {
                    owner
                };
                self.objects.bind(n.ty, n.id, host, own);
            }
            self.after(cmd, &call.args, table.as_deref());
        }
        if let Some(i) = cmd.destroys {
            self.destroyed(cmd, i as usize, call.args[i as usize]);
        }
        // SAFETY: the call returned; its outputs are filled.
        unsafe { interp::encode_reply(out, cmd, &call, ret, &cx) }.map_err(derr)
    }

    /// Decisions after a successful call.
    fn after(&self, cmd: &CommandDesc, args: &[u64], table: Option<&Table>) {
        match cmd.id {
            id::vkCreateInstance => {
                // SAFETY: args[2] points at the new instance handle in the arena.
                let instance = vk::Instance::from_raw(unsafe { *(args[2] as *const u64) });
                self.add_table(instance.as_raw(), instance, None);
            }
            id::vkCreateDevice => {
                let device = unsafe { *(args[3] as *const u64) };
                if let Some(t) = table {
                    let gdpa = self.host.instance_proc(t.instance, c"vkGetDeviceProcAddr");
                    if let Some(gdpa) = gdpa {
                        let gdpa: vk::PFN_vkGetDeviceProcAddr =
                            unsafe { std::mem::transmute(gdpa) };
                        self.add_table(
                            device,
                            t.instance,
                            Some((vk::Device::from_raw(device), gdpa)),
                        );
                    }
                }
            }
            id::vkGetPhysicalDeviceProperties2 => unsafe {
                self.patch_identity(args[1] as *mut vk::PhysicalDeviceProperties2)
            },
            _ => {}
        }
    }

    fn add_table(
        &self,
        owner: u64,
        instance: vk::Instance,
        device: Option<(vk::Device, vk::PFN_vkGetDeviceProcAddr)>,
    ) {
        let fns = (0..COMMANDS.len()).map(|_| OnceLock::new()).collect();
        self.tables.write().insert(
            owner,
            Arc::new(Table {
                instance,
                device,
                fns,
            }),
        );
    }

    fn destroyed(&self, cmd: &CommandDesc, param: usize, host: u64) {
        match cmd.params[param].kind {
            Kind::Value(Ty::Dispatchable(vk::ObjectType::INSTANCE | vk::ObjectType::DEVICE)) => {
                // The children of an instance or device go with it.
                self.objects.unbind_owned_by(host);
                self.tables.write().remove(&host);
            }
            Kind::Value(Ty::Handle(ty) | Ty::Dispatchable(ty)) => {
                if let Some(id) = self.objects.id_of(ty, host) {
                    self.objects.unbind(id);
                }
            }
            // Arrays (vkFreeCommandBuffers, vkFreeDescriptorSets) are the device-level work.
            _ => {}
        }
    }

    /// Destroys a device the client left behind.
    pub fn destroy_device(&self, host: u64) {
        if let Some(t) = self.table(host) {
            if let Some((dev, gdpa)) = t.device {
                // SAFETY: a device the host created and nobody uses any more.
                unsafe {
                    if let Some(f) = gdpa(dev, c"vkDestroyDevice".as_ptr()) {
                        let f: vk::PFN_vkDestroyDevice = std::mem::transmute(f);
                        f(dev, std::ptr::null());
                    }
                }
            }
        }
        self.objects.unbind_owned_by(host);
        self.tables.write().remove(&host);
    }

    /// Destroys an instance the client left behind.
    pub fn destroy_instance(&self, host: u64) {
        let instance = vk::Instance::from_raw(host);
        if let Some(f) = self.host.instance_proc(instance, c"vkDestroyInstance") {
            // SAFETY: an instance the host created whose devices are gone.
            unsafe {
                let f: vk::PFN_vkDestroyInstance = std::mem::transmute(f);
                f(instance, std::ptr::null());
            }
        }
        self.objects.unbind_owned_by(host);
        self.tables.write().remove(&host);
    }

    /// The driver identity: Airlock, naming the host driver it runs on.
    unsafe fn patch_identity(&self, props: *mut vk::PhysicalDeviceProperties2) {
        let mut node = (*props).p_next as *mut vk::BaseOutStructure;
        while !node.is_null() {
            match (*node).s_type {
                vk::StructureType::PHYSICAL_DEVICE_DRIVER_PROPERTIES => {
                    let d = &mut *(node as *mut vk::PhysicalDeviceDriverProperties);
                    set_identity(&mut d.driver_name, &mut d.driver_info);
                }
                vk::StructureType::PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES => {
                    let d = &mut *(node as *mut vk::PhysicalDeviceVulkan12Properties);
                    set_identity(&mut d.driver_name, &mut d.driver_info);
                }
                _ => {}
            }
            node = (*node).p_next;
        }
    }

    /// `vkEnumerateDeviceExtensionProperties`: the host's list, less what Airlock cannot carry.
    fn device_extensions(&self, args: &[u64], table: Option<&Table>) -> u64 {
        let res = |r: vk::Result| r.as_raw() as i64 as u64;
        if args[1] != 0 {
            return res(vk::Result::ERROR_LAYER_NOT_PRESENT);
        }
        let Some(f) = table.and_then(|t| {
            self.host
                .instance_proc(t.instance, c"vkEnumerateDeviceExtensionProperties")
        }) else {
            return res(vk::Result::ERROR_INITIALIZATION_FAILED);
        };
        let f: vk::PFN_vkEnumerateDeviceExtensionProperties = unsafe { std::mem::transmute(f) };
        let pd = vk::PhysicalDevice::from_raw(args[0]);
        let list = self.filter_extensions(
            unsafe { enumerate(|n, p| f(pd, std::ptr::null(), n, p)) },
            false,
        );
        // SAFETY: args[2] is the count and args[3] the (possibly NULL) array, both in the arena,
        // the array holding as many elements as the count said on entry.
        unsafe {
            fill(
                &list,
                args[2] as *mut u32,
                args[3] as *mut vk::ExtensionProperties,
            )
        }
    }
}

use ash::vk::Handle;

fn set_identity(name: &mut [c_char; 256], info: &mut [c_char; 256]) {
    let host_name = unsafe { CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let host_info = unsafe { CStr::from_ptr(info.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let text = format!(
        "Airlock {} on {host_name}: {host_info}",
        env!("CARGO_PKG_VERSION")
    );
    write_cstr(name, "Airlock");
    write_cstr(info, &text);
}

fn write_cstr(dst: &mut [c_char; 256], s: &str) {
    let n = s.len().min(255);
    for (d, b) in dst.iter_mut().zip(s.as_bytes()[..n].iter()) {
        *d = *b as c_char;
    }
    dst[n..].fill(0);
}

/// The "count, then fill" idiom with an answer already known.
unsafe fn fill<T: Copy>(list: &[T], count: *mut u32, out: *mut T) -> u64 {
    if out.is_null() {
        *count = list.len() as u32;
        return 0;
    }
    let n = (*count as usize).min(list.len());
    std::ptr::copy_nonoverlapping(list.as_ptr(), out, n);
    *count = n as u32;
    if n < list.len() {
        vk::Result::INCOMPLETE.as_raw() as i64 as u64
    } else {
        0
    }
}

unsafe fn enumerate<T: Default + Clone>(f: impl Fn(*mut u32, *mut T) -> vk::Result) -> Vec<T> {
    loop {
        let mut n = 0u32;
        if f(&mut n, std::ptr::null_mut()) != vk::Result::SUCCESS {
            return Vec::new();
        }
        let mut v = vec![T::default(); n as usize];
        match f(&mut n, v.as_mut_ptr()) {
            vk::Result::SUCCESS => {
                v.truncate(n as usize);
                return v;
            }
            vk::Result::INCOMPLETE => continue,
            _ => return Vec::new(),
        }
    }
}
