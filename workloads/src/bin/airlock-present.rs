//! `airlock-present --surface offscreen|headless|xcb|xlib|wayland [--frames N] [--size S]
//! [--resize-at K --resize-to S2] [--close-at K] [--validate] [--out file]`: draws N frames of moving
//! rectangles and presents them (an X11 window on `$DISPLAY`, a fullscreen Wayland window on
//! `$WAYLAND_DISPLAY`, a headless surface), or draws them
//! into images of its own (`offscreen`, for drivers without surfaces). The last frame is read
//! back from its image and, for a window, from the window, and checked against the CPU; its
//! pixels go to `file`. Prints the frames per second. Exits 1 on a failure, 2 on bad usage.

use std::path::PathBuf;
use std::process::ExitCode;
use workloads::context::validation_messages;
use workloads::present::{self, Platform, Run};

fn usage(message: &str) -> ExitCode {
    eprintln!("airlock-present: {message}");
    eprintln!(
        "usage: airlock-present --surface offscreen|headless|xcb|xlib|wayland [--frames N] [--size S] \
         [--resize-at K --resize-to S2] [--close-at K] [--validate] [--out file]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut run = Run {
        platform: Platform::Offscreen,
        frames: 100,
        size: 256,
        resize: None,
        close_at: None,
        validate: false,
    };
    let (mut out, mut resize_at, mut resize_to) = (None, None, None);
    let mut platform = None;
    while let Some(arg) = args.next() {
        let number = |v: Option<String>| v.and_then(|v| v.parse::<u32>().ok());
        match arg.as_str() {
            "--surface" => platform = args.next().as_deref().and_then(Platform::parse),
            "--frames" => match number(args.next()) {
                Some(n) if n > 0 => run.frames = n,
                _ => return usage("--frames takes a positive number"),
            },
            "--size" => match number(args.next()) {
                Some(n) if (16..=4096).contains(&n) => run.size = n,
                _ => return usage("--size takes 16 to 4096"),
            },
            "--resize-at" => resize_at = number(args.next()),
            "--resize-to" => resize_to = number(args.next()).filter(|n| (16..=4096).contains(n)),
            "--close-at" => run.close_at = number(args.next()),
            "--validate" => run.validate = true,
            "--out" => out = args.next().map(PathBuf::from),
            _ => return usage(&format!("unexpected argument {arg:?}")),
        }
    }
    let Some(p) = platform else {
        return usage("--surface offscreen, headless, xcb, xlib or wayland is required");
    };
    run.platform = p;
    match (resize_at, resize_to) {
        (Some(at), Some(to)) if at < run.frames => run.resize = Some((at, to)),
        (None, None) => {}
        _ => return usage("--resize-at K (before the last frame) needs --resize-to S2"),
    }
    if (run.resize.is_some() || run.close_at.is_some())
        && !matches!(p, Platform::Xcb | Platform::Xlib)
    {
        return usage("--resize-at and --close-at need a window (xcb or xlib)");
    }
    let outcome = match present::run(run) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("airlock-present --surface {p:?}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let messages = validation_messages();
    if messages > 0 {
        eprintln!("airlock-present: {messages} validation messages");
        return ExitCode::FAILURE;
    }
    println!("{:.1} frames/s", outcome.frames_per_second);
    if let Some(out) = out {
        if let Err(e) = std::fs::write(&out, outcome.report.into_bytes()) {
            eprintln!("airlock-present: writing {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
