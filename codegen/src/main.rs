//! Generates Airlock's tables and entry points from the pinned `codegen/vk.xml`.
//!
//! `cargo run -p codegen` rewrites the generated files; `cargo run -p codegen -- --check` fails
//! when a committed file differs from what the generator produces now.

mod emit;
mod lower;
mod model;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    match run(&root, check) {
        Ok(stale) if stale.is_empty() => {
            if check {
                println!("generated code is up to date");
            }
            ExitCode::SUCCESS
        }
        Ok(stale) => {
            for s in stale {
                eprintln!("stale generated file: {s} (run `cargo run -p codegen`)");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("codegen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(root: &Path, check: bool) -> Result<Vec<String>, String> {
    let xml = root.join("codegen/vk.xml");
    let (registry, _) =
        vk_parse::parse_file(&xml).map_err(|e| format!("{}: {e:?}", xml.display()))?;
    let list = |name: &str| -> Result<BTreeSet<String>, String> {
        Ok(std::fs::read_to_string(root.join("codegen").join(name))
            .map_err(|e| format!("codegen/{name}: {e}"))?
            .lines()
            .flat_map(|l| l.split('#').next())
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    };
    let allowed = list("extensions.txt")?;
    let client = list("icd-extensions.txt")?;
    let mut model = model::Model::load(&registry, &allowed, &client)?;
    let text = std::fs::read_to_string(&xml).map_err(|e| e.to_string())?;
    model.header_version = text
        .split("VK_HEADER_VERSION</name>")
        .nth(1)
        .and_then(|s| s.trim_start().split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .ok_or("no VK_HEADER_VERSION in vk.xml")?;
    let out = emit::generate(&model)?;
    let mut stale = Vec::new();
    for (rel, content) in out {
        let path = root.join(&rel);
        let formatted = rustfmt(&content)?;
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != formatted {
            if check {
                stale.push(rel);
            } else {
                std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
                std::fs::write(&path, formatted).map_err(|e| format!("{rel}: {e}"))?;
                println!("wrote {rel}");
            }
        }
    }
    Ok(stale)
}

fn rustfmt(src: &str) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout", "--quiet"])
        .current_dir(std::env::current_dir().unwrap_or_default())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("rustfmt: {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(src.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err("rustfmt rejected the generated code".into());
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}
