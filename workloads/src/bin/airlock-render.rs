//! `airlock-render [--out file.png] [--size N]`: renders the workloads' MSAA scene offscreen on
//! the Vulkan driver the loader picks and writes it as a PNG.

use std::path::PathBuf;
use std::process::ExitCode;
use workloads::{scene, Context, Options};

fn main() -> ExitCode {
    let mut out = PathBuf::from("airlock-render.png");
    let mut size = 512u32;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--out", Some(v)) => out = PathBuf::from(v),
            ("--size", Some(v)) if v.parse::<u32>().is_ok_and(|s| (16..=4096).contains(&s)) => {
                size = v.parse().unwrap()
            }
            _ => {
                eprintln!("usage: airlock-render [--out file.png] [--size 16..4096]");
                return ExitCode::from(2);
            }
        }
    }
    match render(&out, size) {
        Ok(driver) => {
            println!("wrote {} ({size}x{size}) on {driver}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("airlock-render: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Renders, checks and writes the picture; returns the driver's description.
fn render(out: &PathBuf, size: u32) -> Result<String, Box<dyn std::error::Error>> {
    let ctx = Context::new(Options::default())?;
    let driver = ctx.driver_description();
    let pixels = scene::render(&ctx, size)?;
    scene::check(size, &pixels)?;
    drop(ctx);
    let file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut encoder = png::Encoder::new(file, size, size);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()?
        .write_image_data(bytemuck::cast_slice(&pixels))?;
    Ok(driver)
}
