//! Confinement of the server process. SECURITY.md has the threat model, what each layer blocks
//! and how to check them on a machine.
//!
//! [`early`] runs first in `main`, while the process has one thread: it reads
//! `AIRLOCK_SANDBOX`, turns Mesa's on-disk shader cache off and enters namespaces.
//! [`after_init`] runs once the host driver is loaded, before the client is welcomed: it warms
//! the driver up (an instance and its physical devices, [`probe`]) so that its one-time set-up
//! (CPU detection, LLVM's target) happens while files are readable, then applies, in this order,
//! resource limits, no-new-privs, landlock and seccomp; each layer refuses the calls that set
//! up the ones before it.
//!
//! `AIRLOCK_SANDBOX`: `best-effort` (the default) applies what the kernel allows and logs each
//! layer's outcome in one line; `strict` refuses to serve the client (it sees
//! `VK_ERROR_INITIALIZATION_FAILED`) when any layer fails; `off` applies nothing.

mod filesystem;
mod limits;
mod namespaces;
#[cfg(target_arch = "x86_64")]
mod policy;
mod probe;
#[cfg(target_arch = "x86_64")]
mod seccomp;
mod selftest;
mod shader_cache;

use crate::host::HostDriver;
use std::os::fd::BorrowedFd;
use std::sync::OnceLock;
use thiserror::Error;
use tracing::{info, warn};

/// Why the sandbox, or one of its layers, could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SandboxError {
    /// `AIRLOCK_SANDBOX` names no mode.
    #[error("AIRLOCK_SANDBOX={0:?}: expected strict, best-effort or off")]
    Mode(String),
    /// A call a layer needs failed.
    #[error("{call}: {err}")]
    Call { call: &'static str, err: String },
    /// What the layer needs is not there (the kernel, the architecture, the set-up).
    #[error("{0}")]
    Unavailable(String),
    /// A setting of the environment is malformed.
    #[error("{var}: {why}")]
    Setting { var: &'static str, why: String },
    /// Strict mode, and these layers failed.
    #[error("sandbox (strict) refuses to serve: {failed} failed. {summary}")]
    Strict { failed: String, summary: String },
}

impl From<&str> for SandboxError {
    fn from(why: &str) -> SandboxError {
        SandboxError::Unavailable(why.into())
    }
}

impl SandboxError {
    /// A failed call, for `map_err`.
    pub fn call<E: std::fmt::Display>(call: &'static str) -> impl FnOnce(E) -> SandboxError {
        move |e| SandboxError::Call {
            call,
            err: e.to_string(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Strict,
    BestEffort,
    Off,
}

impl Mode {
    pub fn from_env() -> Result<Mode, SandboxError> {
        match std::env::var("AIRLOCK_SANDBOX").as_deref() {
            Err(std::env::VarError::NotPresent) | Ok("") | Ok("best-effort") => {
                Ok(Mode::BestEffort)
            }
            Ok("strict") => Ok(Mode::Strict),
            Ok("off") => Ok(Mode::Off),
            Ok(other) => Err(SandboxError::Mode(other.to_string())),
            Err(e) => Err(SandboxError::Setting {
                var: "AIRLOCK_SANDBOX",
                why: e.to_string(),
            }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Strict => "strict",
            Mode::BestEffort => "best-effort",
            Mode::Off => "off",
        }
    }
}

#[derive(Clone, Debug)]
pub enum Outcome {
    Applied(String),
    Failed(SandboxError),
    /// Left out on request (the self-test's `--skip`).
    Skipped,
}

/// What one layer came to.
#[derive(Clone, Debug)]
pub struct Layer {
    pub name: &'static str,
    pub outcome: Outcome,
}

impl Layer {
    fn new(name: &'static str, r: Result<String, SandboxError>) -> Layer {
        Layer {
            name,
            outcome: match r {
                Ok(d) => Outcome::Applied(d),
                Err(e) => Outcome::Failed(e),
            },
        }
    }

    pub fn applied(&self) -> bool {
        matches!(self.outcome, Outcome::Applied(_))
    }
}

/// Every layer's outcome, for the log and the self-test.
#[derive(Debug)]
pub struct Report {
    pub layers: Vec<Layer>,
    /// Not layers, but part of the set-up: the shader cache, the warm-up.
    pub notes: Vec<String>,
}

impl Report {
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name == name)
    }

    fn failures(&self) -> Vec<&Layer> {
        self.layers
            .iter()
            .filter(|l| matches!(l.outcome, Outcome::Failed(_)))
            .collect()
    }

    /// One line: `namespaces: user, ...; limits: ...; seccomp: FAILED (why)`.
    pub fn summary(&self) -> String {
        self.layers
            .iter()
            .map(|l| match &l.outcome {
                Outcome::Applied(d) => format!("{}: {d}", l.name),
                Outcome::Failed(e) => format!("{}: FAILED ({e})", l.name),
                Outcome::Skipped => format!("{}: skipped", l.name),
            })
            .chain(self.notes.iter().cloned())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The server's sandbox commands, if `args` holds one: `--sandbox-selftest [--skip LAYER]...`
/// (see [`selftest`]) and `--sandbox-policy` (prints the seccomp policy as compiled in).
pub fn command(args: &[String]) -> Option<std::process::ExitCode> {
    if args.iter().any(|a| a == "--sandbox-selftest") {
        return Some(selftest::run(args));
    }
    if args.iter().any(|a| a == "--sandbox-policy") {
        #[cfg(target_arch = "x86_64")]
        print!("{}", seccomp::describe(policy::POLICY));
        #[cfg(not(target_arch = "x86_64"))]
        println!("no seccomp policy for {}", std::env::consts::ARCH);
        return Some(std::process::ExitCode::SUCCESS);
    }
    None
}

/// What [`early`] did, for [`after_init`] to report.
struct Early {
    mode: Mode,
    namespaces: Option<Layer>,
    notes: Vec<String>,
    /// The application's shader cache, when it has one.
    cache: Option<shader_cache::Cache>,
}

static EARLY: OnceLock<Early> = OnceLock::new();

/// First thing in `main`, before any thread exists (a multithreaded process cannot enter a new
/// user namespace, and changing the environment is only sound while no other thread reads it).
/// Errors only for a malformed `AIRLOCK_SANDBOX`.
/// `control` is the client's socket, whose peer names the application (its shader cache);
/// `None` in the self-test, which stands for its own application.
pub fn early(control: Option<BorrowedFd<'_>>) -> Result<Mode, SandboxError> {
    let mode = Mode::from_env()?;
    let mut early = Early {
        mode,
        namespaces: None,
        notes: Vec::new(),
        cache: None,
    };
    if mode != Mode::Off {
        // Before the namespaces: the directory is made as the user, in the user's file system.
        match shader_cache::prepare(control) {
            Ok(c) => {
                early.notes.push(use_shader_cache(&c));
                early.cache = Some(c);
            }
            Err(why) => early.notes.push(disable_shader_cache(&why)),
        }
        early.namespaces = Some(Layer::new("namespaces", namespaces::enter()));
    }
    let _ = EARLY.set(early);
    Ok(mode)
}

/// The application's shader cache directory, if [`early`] gave it one.
pub fn cache_dir() -> Option<std::path::PathBuf> {
    EARLY.get()?.cache.as_ref().map(|c| c.dir.clone())
}

/// Points Mesa's on-disk shader cache at the application's own directory
/// (`shader_cache.rs`), whatever the environment said.
fn use_shader_cache(c: &shader_cache::Cache) -> String {
    std::env::set_var("MESA_SHADER_CACHE_DIR", &c.dir);
    std::env::remove_var("MESA_SHADER_CACHE_DISABLE");
    std::env::remove_var("MESA_GLSL_CACHE_DISABLE");
    format!(
        "shader cache: {} (for {})",
        c.dir.display(),
        c.exe.display()
    )
}

/// Without an application directory, Mesa's on-disk shader cache (under `$HOME`, which landlock
/// makes unwritable and seccomp unopenable) is off, whatever the environment said, rather than
/// let every compile fail to write it. (The same setting the benchmarks use on both sides.)
fn disable_shader_cache(why: &str) -> String {
    let overridden: Vec<String> = ["MESA_SHADER_CACHE_DISABLE", "MESA_SHADER_CACHE_DIR"]
        .iter()
        .filter_map(|k| {
            std::env::var(k)
                .ok()
                .filter(|v| *k != "MESA_SHADER_CACHE_DISABLE" || v != "true")
                .map(|v| format!("{k}={v}"))
        })
        .collect();
    // Both names: MESA_GLSL_CACHE_DISABLE is what Mesa before 22.3 reads.
    std::env::set_var("MESA_SHADER_CACHE_DISABLE", "true");
    std::env::set_var("MESA_GLSL_CACHE_DISABLE", "true");
    std::env::remove_var("MESA_SHADER_CACHE_DIR");
    if overridden.is_empty() {
        format!("shader cache: off ({why})")
    } else {
        format!(
            "shader cache: off ({why}; overriding {})",
            overridden.join(", ")
        )
    }
}

/// Once the host driver is loaded, before the client is welcomed: warms the driver up, then
/// locks the process down. `control` is the client's socket, the only one the server may use
/// afterwards. In strict mode, an error names the layers that failed; the caller refuses the
/// client with it.
pub fn after_init(host: &HostDriver, control: BorrowedFd<'_>) -> Result<Report, SandboxError> {
    lock_down(host, control, &[])
}

/// [`after_init`] with some layers left out (`skip`: layer names), for the self-test.
fn lock_down(
    host: &HostDriver,
    control: BorrowedFd<'_>,
    skip: &[String],
) -> Result<Report, SandboxError> {
    let (mode, namespaces, mut notes, cache) = match EARLY.get() {
        Some(e) => (
            e.mode,
            e.namespaces.clone(),
            e.notes.clone(),
            e.cache.clone(),
        ),
        // main always calls early(); without it, say so rather than pretend.
        None => (
            Mode::from_env()?,
            Some(Layer::new(
                "namespaces",
                Err(SandboxError::Unavailable(
                    "not entered (sandbox::early was not called)".into(),
                )),
            )),
            Vec::new(),
            None,
        ),
    };
    if mode == Mode::Off {
        warn!("sandbox: off (AIRLOCK_SANDBOX=off): the server runs unconfined");
        return Ok(Report {
            layers: Vec::new(),
            notes,
        });
    }
    match probe::run(host, probe::Stage::Screen) {
        Ok(t) => notes.push(format!("warm-up: {} ms", t.as_millis())),
        // Not a layer: the client will meet the same driver error and report it itself.
        Err(e) => notes.push(format!("warm-up failed: {e}")),
    }
    let mut layers: Vec<Layer> = namespaces.into_iter().collect();
    // Each layer's outcome goes to `layers`; whether it applied comes back.
    let apply = |layers: &mut Vec<Layer>,
                 name: &'static str,
                 f: &dyn Fn() -> Result<String, SandboxError>| {
        let l = if skip.iter().any(|s| s == name) {
            Layer {
                name,
                outcome: Outcome::Skipped,
            }
        } else {
            Layer::new(name, f())
        };
        let applied = l.applied();
        layers.push(l);
        applied
    };
    apply(&mut layers, "limits", &limits::apply);
    apply(&mut layers, "no-new-privs", &privileges);
    let readable: Vec<&std::path::Path> = host
        .validated
        .iter()
        .flat_map(|v| [v.manifest.as_path(), v.layer_dir.as_path()])
        .collect();
    let cache_dir = cache.as_ref().map(|c| c.dir.as_path());
    let confined = apply(&mut layers, "landlock", &|| {
        filesystem::restrict(&readable, cache_dir)
    });
    // Seccomp lets the server open files for the cache only where landlock confines them to
    // its directory; without landlock the cache stays unreachable after lock-down.
    let cached = cache.is_some() && confined;
    if cache.is_some() && !confined {
        notes.push("shader cache: read at warm-up only (no landlock to confine it)".into());
    }
    apply(&mut layers, "seccomp", &|| {
        seccomp_layer(control, host.validated.is_some(), cached)
    });
    let report = Report { layers, notes };
    let failures = report.failures();
    if failures.is_empty() {
        info!("sandbox ({}): {}", mode.name(), report.summary());
    } else if mode == Mode::Strict {
        let names: Vec<&str> = failures.iter().map(|l| l.name).collect();
        return Err(SandboxError::Strict {
            failed: names.join(", "),
            summary: report.summary(),
        });
    } else {
        warn!(
            "sandbox ({}): some layers failed: {}",
            mode.name(),
            report.summary()
        );
    }
    Ok(report)
}

/// `PR_SET_NO_NEW_PRIVS`, which landlock and seccomp need and which makes any later `execve`
/// unable to gain privileges; and every capability dropped (a server started as root, or in the
/// user namespace it owns, holds some).
fn privileges() -> Result<String, SandboxError> {
    rustix::thread::set_no_new_privs(true).map_err(SandboxError::call("PR_SET_NO_NEW_PRIVS"))?;
    let caps = rustix::thread::capabilities(None).map_err(SandboxError::call("capget"))?;
    if caps.permitted.is_empty() && caps.effective.is_empty() && caps.inheritable.is_empty() {
        return Ok("set, no capabilities held".into());
    }
    let none = rustix::thread::CapabilitySet::empty();
    rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets {
            effective: none,
            permitted: none,
            inheritable: none,
        },
    )
    .map_err(SandboxError::call("dropping capabilities"))?;
    Ok("set, capabilities dropped".into())
}

#[cfg(target_arch = "x86_64")]
fn seccomp_layer(
    control: BorrowedFd<'_>,
    validated: bool,
    cache: bool,
) -> Result<String, SandboxError> {
    seccomp::install(&policy::policy(validated, cache), control)
}

#[cfg(not(target_arch = "x86_64"))]
fn seccomp_layer(
    _control: BorrowedFd<'_>,
    _validated: bool,
    _cache: bool,
) -> Result<String, SandboxError> {
    Err(SandboxError::Unavailable(format!(
        "no policy for {} yet (server/src/sandbox/policy.rs is x86_64's)",
        std::env::consts::ARCH
    )))
}

/// Calls trapped (refused with `EPERM` and logged) by the seccomp filter so far.
pub fn trapped() -> u32 {
    #[cfg(target_arch = "x86_64")]
    return seccomp::trapped();
    #[cfg(not(target_arch = "x86_64"))]
    0
}
