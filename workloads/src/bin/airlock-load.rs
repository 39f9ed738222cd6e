//! `airlock-load [--clients N] [--seconds S]`: many clients at once, through Airlock and then
//! natively, each computing or rendering and checking its own results, for a bounded time (a
//! load test, not a timed test). Through Airlock every client connects to one
//! `airlock-server --listen` launcher, which starts a confined server per client, as a machine
//! serving many programs would; midway one client is SIGKILLed while it submits (its server
//! must go), and one more client sends its server a corrupt stream. Every other client must
//! finish with its results right. Then one client allocates and frees memory 100,000 times while its server's
//! descriptors are counted.
//!
//! Prints a table: clients finished right, iterations per second against the same number of
//! native processes, each server's resident memory and descriptors mid-run, and the descriptor
//! counts around the allocations. Exits 1 when a client that should have finished did not.
//!
//! `airlock-load --child compute|render|alloc S` is one client.

use ash::vk;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use workloads::memory::Location;
use workloads::rect::{Offscreen, Rect};
use workloads::shaders::Pattern;
use workloads::{drivers, Check, Context, Options, Result};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    if args.get(1).map(String::as_str) == Some("--child") {
        let kind = args.get(2).map(String::as_str).unwrap_or("");
        let secs = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
        match child(kind, Duration::from_secs(secs)) {
            Ok(n) => println!("iterations={n}"),
            Err(e) => {
                println!("error={e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let clients = arg("--clients").unwrap_or(16) as usize;
    let secs = arg("--seconds").unwrap_or(20);
    if let Err(e) = parent(clients, secs) {
        eprintln!("airlock-load: {e}");
        std::process::exit(1);
    }
}

fn child(kind: &str, run: Duration) -> Result<u64> {
    let ctx = Context::new(Options::default())?;
    let t = Instant::now();
    let mut n = 0u64;
    match kind {
        "compute" => {
            let kernel = Pattern::kernel(&ctx, vk::PipelineCache::null())?;
            let out = ctx.buffer(
                4 * 4096,
                vk::BufferUsageFlags::STORAGE_BUFFER,
                Location::Host,
            )?;
            let set = ctx.kernel_set(&kernel, &[&out])?;
            while t.elapsed() < run {
                let p = Pattern {
                    offset: 0,
                    count: 4096,
                    mul: (n % 97) as u32 + 1,
                    add: n as u32,
                };
                ctx.run_commands(|cmd| {
                    kernel.dispatch(&ctx, cmd, set, &p, p.groups());
                    Ok(())
                })?;
                let words: Vec<u32> = out.read();
                if let Some(i) = (0..4096).find(|&i| words[i] != p.value(i as u32)) {
                    return Err(workloads::Error::Mismatch(format!(
                        "iteration {n}: word {i} is {}, expected {}",
                        words[i],
                        p.value(i as u32)
                    )));
                }
                n += 1;
            }
        }
        "render" => {
            let size = 128;
            let target = Offscreen::new(&ctx, size, false)?;
            while t.elapsed() < run {
                let x = (n % 64) as u32;
                let rects = [Rect::pixels(
                    size,
                    [x, 8, x + 40, 100],
                    [200, 30, 60, 255],
                    0.5,
                )];
                ctx.run_commands(|cmd| {
                    target.begin(&ctx, cmd, [0, 0, 0, 255]);
                    target.draw(&ctx, cmd, &rects[0]);
                    target.end(&ctx, cmd);
                    Ok(())
                })?;
                let want = workloads::rect::expected_pixels(size, [0, 0, 0, 255], &rects, false);
                if target.pixels() != want {
                    return Err(workloads::Error::Mismatch(format!("frame {n} differs")));
                }
                n += 1;
            }
        }
        "alloc" => {
            // Allocations and frees of host-visible memory (a memfd each on the server),
            // each mapped once: the server's descriptors must come back to where they were.
            let ty = ctx
                .memory_type(u32::MAX, vk::MemoryPropertyFlags::HOST_VISIBLE)
                .ok_or_else(|| workloads::Error::Unsupported("no host-visible memory".into()))?;
            for i in 0..100_000u64 {
                let info = vk::MemoryAllocateInfo::default()
                    .allocation_size(4096)
                    .memory_type_index(ty);
                let m =
                    unsafe { ctx.device.allocate_memory(&info, None) }.check("vkAllocateMemory")?;
                if i % 10 == 0 {
                    unsafe {
                        let p = ctx
                            .device
                            .map_memory(m, 0, 4096, vk::MemoryMapFlags::empty())
                            .check("vkMapMemory")?;
                        *(p as *mut u64) = i;
                        ctx.device.unmap_memory(m);
                    }
                }
                unsafe { ctx.device.free_memory(m, None) };
                n += 1;
            }
            // Time for the parent to count the descriptors of a server at rest.
            println!("allocated={n}");
            std::thread::sleep(Duration::from_secs(2));
        }
        _ => {
            return Err(workloads::Error::Unsupported(format!(
                "no client kind {kind:?}"
            )))
        }
    }
    Ok(n)
}

/// A client's label and, when it finished with its results right, its iterations.
type Finished = (String, Option<u64>);
/// A server's pid, resident KiB and descriptors.
type Sample = (i32, u64, usize);

struct Client {
    kind: &'static str,
    child: Child,
    role: Role,
}

#[derive(PartialEq)]
enum Role {
    Normal,
    /// SIGKILLed midway.
    Killed,
}

fn spawn(kind: &'static str, secs: u64, manifest: &PathBuf, socket: Option<&Path>) -> Child {
    let exe = std::env::current_exe().expect("own executable");
    let mut c = drivers::with_driver(exe, manifest);
    c.args(["--child", kind, &secs.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(s) = socket {
        c.env("AIRLOCK_SOCKET", s);
    }
    c.spawn().expect("starting a client")
}

/// The launcher's live children (one server per client), by pid.
fn servers(launcher: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next(), fields.next());
        // A server that exited and that the launcher has not reaped yet is gone too.
        if state != Some("Z") && ppid == Some(&launcher.to_string()) {
            if let Ok(pid) = e.file_name().to_string_lossy().parse() {
                out.push(pid);
            }
        }
    }
    out.sort();
    out
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Runs `clients` clients for `secs` seconds on one driver; their iterations, and whether each
/// finished right, in spawn order.
fn run_all(
    clients: usize,
    secs: u64,
    manifest: &PathBuf,
    socket: Option<&Path>,
    launcher: Option<u32>,
) -> (Vec<Finished>, Vec<Sample>) {
    let mut all: Vec<Client> = (0..clients)
        .map(|i| {
            let kind = if i % 2 == 0 { "compute" } else { "render" };
            let role = if launcher.is_some() && i == 1 {
                Role::Killed
            } else {
                Role::Normal
            };
            Client {
                kind,
                child: spawn(kind, secs, manifest, socket),
                role,
            }
        })
        .collect();
    let mut sampled = Vec::new();
    if let Some(l) = launcher {
        std::thread::sleep(Duration::from_secs(secs / 2));
        // Mid-run: every server's memory and descriptors.
        let pids = servers(l);
        sampled = pids.iter().map(|&p| (p, rss_kib(p), fds(p))).collect();
        // One client SIGKILLed while it submits and waits: its server must clean up and go,
        // and nobody else may notice.
        if let Some(victim) = all.iter_mut().find(|c| c.role == Role::Killed) {
            let _ = victim.child.kill();
        }
        let gone = (0..300).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            servers(l).len() < pids.len()
        });
        println!(
            "killed client: its server {} ({} servers before)",
            if gone { "exited" } else { "is STILL RUNNING" },
            pids.len()
        );
        // And a client that sends its server garbage.
        let probe = drivers::target_dir().join("airlock-probe");
        let mut c = drivers::with_driver(probe, manifest);
        c.arg("corrupt-stream")
            .env("AIRLOCK_SOCKET", socket.unwrap());
        let o = c.output().expect("the corrupt client");
        let text = String::from_utf8_lossy(&o.stdout);
        println!(
            "corrupt client: {}",
            text.lines()
                .filter(|l| l.starts_with("hung_up=") || l.starts_with("server_gone="))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut results = Vec::new();
    for c in all.iter_mut() {
        let o = c.child.wait_with_output_ref();
        let text = String::from_utf8_lossy(&o.0);
        let n = text
            .lines()
            .find_map(|l| l.strip_prefix("iterations=")?.parse().ok())
            .filter(|_| o.1);
        let label = match c.role {
            Role::Killed => format!("{} (killed)", c.kind),
            Role::Normal => c.kind.to_string(),
        };
        if n.is_none() && c.role == Role::Normal {
            eprintln!("{label}: {}{}", text, String::from_utf8_lossy(&o.2));
        }
        results.push((label, n));
    }
    (results, sampled)
}

/// `wait_with_output` for a child held by reference: stdout, success, stderr.
trait WaitRef {
    fn wait_with_output_ref(&mut self) -> (Vec<u8>, bool, Vec<u8>);
}

impl WaitRef for Child {
    fn wait_with_output_ref(&mut self) -> (Vec<u8>, bool, Vec<u8>) {
        use std::io::Read;
        let mut out = Vec::new();
        let mut err = Vec::new();
        if let Some(mut s) = self.stdout.take() {
            let _ = s.read_to_end(&mut out);
        }
        if let Some(mut s) = self.stderr.take() {
            let _ = s.read_to_end(&mut err);
        }
        let ok = self.wait().is_ok_and(|s| s.success());
        (out, ok, err)
    }
}

fn parent(clients: usize, secs: u64) -> std::result::Result<(), String> {
    let airlock = drivers::airlock_manifest();
    let native = drivers::native_manifest();
    let dir = std::env::temp_dir().join(format!("airlock-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let socket = dir.join("airlock.sock");
    let server = drivers::target_dir().join("airlock-server");
    let mut launcher = Command::new(&server)
        .arg("--listen")
        .arg(&socket)
        .env("MESA_SHADER_CACHE_DISABLE", "true")
        .spawn()
        .map_err(|e| format!("{}: {e}", server.display()))?;
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("{clients} clients, {secs} s, on {} cores", num_cores());
    let (a, sampled) = run_all(clients, secs, &airlock, Some(&socket), Some(launcher.id()));
    // One client allocating and freeing 100,000 times: its server's descriptors before,
    // during and after.
    let before: Vec<i32> = servers(launcher.id());
    let mut alloc = spawn("alloc", secs, &airlock, Some(&socket));
    let mut pid = None;
    for _ in 0..200 {
        pid = servers(launcher.id())
            .into_iter()
            .find(|p| !before.contains(p));
        if pid.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let Some(pid) = pid else {
        let _ = alloc.kill();
        let _ = alloc.wait();
        return Err("no server for the allocating client".into());
    };
    std::thread::sleep(Duration::from_millis(300));
    let fds_start = fds(pid);
    // Sampled until the client exits; the last samples fall in the two seconds it rests
    // after its last free.
    let (mut fds_max, mut fds_end) = (fds_start, fds_start);
    while alloc.try_wait().map_err(|e| e.to_string())?.is_none() {
        let f = fds(pid);
        if f > 0 {
            fds_max = fds_max.max(f);
            fds_end = f;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = alloc.wait_with_output_ref();
    let allocs_ok = o.1;
    let _ = launcher.kill();
    let _ = launcher.wait();
    let (n, _) = run_all(clients, secs, &native, None, None);

    let total = |r: &[Finished]| r.iter().filter_map(|x| x.1).sum::<u64>();
    let right_a = a.iter().filter(|x| x.1.is_some()).count();
    let normal_a = a.iter().filter(|x| !x.0.contains("killed")).count();
    let normal_right = a
        .iter()
        .filter(|x| !x.0.contains("killed") && x.1.is_some())
        .count();
    println!();
    println!("| | native | Airlock |");
    println!("| --- | --- | --- |");
    println!(
        "| clients finished with right results | {} of {} | {} of {} (and the one killed) |",
        n.iter().filter(|x| x.1.is_some()).count(),
        n.len(),
        right_a,
        a.len() - 1,
    );
    println!(
        "| iterations (compute + render), per second | {:.1} | {:.1} ({:.2}x) |",
        total(&n) as f64 / secs as f64,
        total(&a) as f64 / secs as f64,
        total(&a) as f64 / total(&n).max(1) as f64
    );
    if !sampled.is_empty() {
        let rss: Vec<u64> = sampled.iter().map(|s| s.1).collect();
        let fd: Vec<usize> = sampled.iter().map(|s| s.2).collect();
        println!(
            "| per-server resident memory, mid-run | | {} to {} MiB (mean {:.1}) |",
            rss.iter().min().unwrap() / 1024,
            rss.iter().max().unwrap() / 1024,
            rss.iter().sum::<u64>() as f64 / rss.len() as f64 / 1024.0
        );
        println!(
            "| per-server descriptors, mid-run | | {} to {} |",
            fd.iter().min().unwrap(),
            fd.iter().max().unwrap()
        );
    }
    println!(
        "| 100,000 allocations and frees: server descriptors at start / most / at rest after | | {fds_start} / {fds_max} / {fds_end} ({}) |",
        if allocs_ok { "client finished" } else { "client FAILED" }
    );
    let _ = std::fs::remove_dir_all(&dir);
    if normal_right != normal_a || !allocs_ok || fds_end > fds_start + 8 {
        return Err("a client that should have finished did not, or descriptors grew".into());
    }
    Ok(())
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
