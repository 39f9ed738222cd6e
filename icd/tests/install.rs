//! `make install` into a scratch prefix, then `airlock-run`: the wrapper gives a program
//! Airlock alone, and a program run without it sees what it saw before the install.

use std::path::Path;
use std::process::Command;

/// `vulkaninfo --summary`'s device lines (`deviceName`, `driverName`), with the loader
/// finding drivers as it would for the user whose home is `home`.
fn summary(home: &Path, wrapper: Option<&Path>) -> Vec<String> {
    let mut c = match wrapper {
        Some(w) => {
            let mut c = Command::new(w);
            c.arg("vulkaninfo");
            c
        }
        None => Command::new("vulkaninfo"),
    };
    c.arg("--summary")
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("VK_DRIVER_FILES")
        .env_remove("VK_ICD_FILENAMES")
        .env_remove("VK_ADD_DRIVER_FILES")
        .env("MESA_SHADER_CACHE_DISABLE", "true");
    let o = c.output().expect("running vulkaninfo");
    assert!(
        o.status.success(),
        "vulkaninfo: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("deviceName") || l.starts_with("driverName"))
        .map(str::to_string)
        .collect()
}

fn make(args: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = Command::new("make")
        .args(args)
        .current_dir(&root)
        .output()
        .expect("running make");
    assert!(
        o.status.success(),
        "make {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn airlock_run_gives_airlock_alone_and_others_see_what_they_saw() {
    let home = std::env::temp_dir().join(format!("airlock-install-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let prefix = home.join(".local");
    let before = summary(&home, None);
    assert!(!before.is_empty(), "no device natively");
    let p = format!("PREFIX={}", prefix.display());
    make(&["install", &p, "PROFILE=debug"]);
    let wrapper = prefix.join("bin/airlock-run");
    let through = summary(&home, Some(&wrapper));
    let names: Vec<&String> = through
        .iter()
        .filter(|l| l.starts_with("driverName"))
        .collect();
    assert_eq!(
        names.len(),
        1,
        "one device through airlock-run: {through:?}"
    );
    assert!(names[0].ends_with("= Airlock"), "{through:?}");
    assert_eq!(
        summary(&home, None),
        before,
        "the install changed what others see"
    );
    // The option that offers Airlock to every program does so.
    make(&["install", &p, "PROFILE=debug", "SYSTEM_ICD=1"]);
    let all = summary(&home, None);
    assert!(all.iter().any(|l| l.ends_with("= Airlock")), "{all:?}");
    assert_eq!(all.len(), before.len() + 2, "{all:?}");
    make(&["uninstall", &p]);
    assert_eq!(summary(&home, None), before);
    assert!(!wrapper.exists());
    let _ = std::fs::remove_dir_all(&home);
}
