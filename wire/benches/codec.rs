//! Encode and decode cost of typical structs and calls through the generated tables.

use ash::vk;
use bumpalo::Bump;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use wire::codec::{DecodeError, Decoder, Encoder};
use wire::generated::commands::{
    C_vkCmdDraw, C_vkCreateInstance, C_vkGetPhysicalDeviceProperties2,
};
use wire::generated::structs::S_PhysicalDeviceProperties2;
use wire::interp::{self, ClientObjects, Handles, ServerObjects};

/// Ids pass through unchanged, as between a client and a server whose tables agree.
struct Ids;
impl Handles for Ids {
    fn encode_handle(&self, _: vk::ObjectType, _: bool, raw: u64) -> Result<u64, DecodeError> {
        Ok(raw)
    }
    fn decode_handle(&self, _: vk::ObjectType, _: bool, id: u64) -> Result<u64, DecodeError> {
        Ok(id)
    }
}
impl ClientObjects for Ids {
    fn new_id(&self) -> u64 {
        7
    }
    fn wrap_new(&self, _: vk::ObjectType, _: bool, id: u64) -> u64 {
        id
    }
}
impl ServerObjects for Ids {
    fn check_new(&self, _: vk::ObjectType, _: u64) -> Result<(), DecodeError> {
        Ok(())
    }
}

fn bench(c: &mut Criterion) {
    let mut enc = Encoder::new();
    let mut ids = Vec::new();
    let mut arena = Bump::new();

    // vkCmdDraw: the shape of most recorded commands.
    let draw_args = [0x1000u64, 3, 1, 0, 0];
    c.bench_function("encode vkCmdDraw", |b| {
        b.iter(|| {
            enc.clear();
            unsafe {
                interp::encode_request(
                    &mut enc,
                    &C_vkCmdDraw,
                    black_box(&draw_args),
                    &Ids,
                    &mut ids,
                )
            }
            .unwrap();
        })
    });
    enc.clear();
    unsafe { interp::encode_request(&mut enc, &C_vkCmdDraw, &draw_args, &Ids, &mut ids) }.unwrap();
    let draw = enc.buf.clone();
    c.bench_function("decode vkCmdDraw", |b| {
        b.iter(|| {
            arena.reset();
            let call = interp::decode_request(
                &mut Decoder::new(black_box(&draw)),
                &C_vkCmdDraw,
                &arena,
                &Ids,
            )
            .unwrap();
            black_box(call.args[1]);
        })
    });

    // vkCreateInstance with application info and extension names.
    let exts = [
        c"VK_KHR_get_physical_device_properties2".as_ptr(),
        c"VK_KHR_external_memory_capabilities".as_ptr(),
    ];
    let app = vk::ApplicationInfo::default()
        .application_name(c"bench")
        .engine_name(c"none")
        .api_version(vk::API_VERSION_1_3);
    let info = vk::InstanceCreateInfo::default()
        .application_info(&app)
        .enabled_extension_names(&exts);
    let mut out = vk::Instance::null();
    let create_args = [&info as *const _ as u64, 0, &mut out as *mut _ as u64];
    c.bench_function("encode vkCreateInstance", |b| {
        b.iter(|| {
            enc.clear();
            ids.clear();
            unsafe {
                interp::encode_request(
                    &mut enc,
                    &C_vkCreateInstance,
                    black_box(&create_args),
                    &Ids,
                    &mut ids,
                )
            }
            .unwrap();
        })
    });
    enc.clear();
    unsafe { interp::encode_request(&mut enc, &C_vkCreateInstance, &create_args, &Ids, &mut ids) }
        .unwrap();
    let create = enc.buf.clone();
    c.bench_function("decode vkCreateInstance", |b| {
        b.iter(|| {
            arena.reset();
            black_box(
                interp::decode_request(
                    &mut Decoder::new(&create),
                    &C_vkCreateInstance,
                    &arena,
                    &Ids,
                )
                .unwrap()
                .args[0],
            );
        })
    });

    // A properties reply with a chain, written back into the application's structs.
    let mut driver = vk::PhysicalDeviceDriverProperties::default();
    let mut v11 = vk::PhysicalDeviceVulkan11Properties::default();
    let mut props = vk::PhysicalDeviceProperties2::default()
        .push_next(&mut driver)
        .push_next(&mut v11);
    enc.clear();
    unsafe {
        interp::put_struct(
            &mut enc,
            &S_PhysicalDeviceProperties2,
            &props as *const _ as *const u8,
            &Ids,
            false,
        )
    }
    .unwrap();
    let mut reply = Encoder::new();
    reply.u64(0);
    reply.buf.extend_from_slice(&enc.buf);
    let args = [0x1000u64, &mut props as *mut _ as u64];
    c.bench_function("write back vkGetPhysicalDeviceProperties2 reply", |b| {
        b.iter(|| {
            let mut dc = Decoder::new(black_box(&reply.buf));
            unsafe {
                interp::decode_reply(&mut dc, &C_vkGetPhysicalDeviceProperties2, &args, &Ids, &[])
            }
            .unwrap();
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
