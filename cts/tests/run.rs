//! The whole `run` path against a fake deqp-vk and a fake deqp-runner, `compare` on its output,
//! and `merge` on shard directories.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Answers `--deqp-runmode=txt-caselist` as deqp-vk does: from its own directory, into the
/// export-file pattern. Counts its calls.
const FAKE_DEQP_VK: &str = r#"#!/bin/sh
echo call >> "$(dirname "$0")/calls"
pattern='${packageName}-cases.${typeExtension}'
mode=execute
for arg in "$@"; do
  case "$arg" in
    --deqp-runmode=*) mode="${arg#--deqp-runmode=}" ;;
    --deqp-caselist-export-file=*) pattern="${arg#--deqp-caselist-export-file=}" ;;
  esac
done
[ "$mode" = txt-caselist ] || { echo "fake deqp-vk: only txt-caselist" >&2; exit 1; }
[ -d vulkan ] || { echo "fake deqp-vk: not started in its own directory" >&2; exit 1; }
[ -n "$VK_DRIVER_FILES" ] || { echo "fake deqp-vk: no driver chosen" >&2; exit 1; }
file=$(printf '%s' "$pattern" | sed 's/\${packageName}/dEQP-VK/; s/\${typeExtension}/txt/')
echo "dEQP Core git-fake0123 (0x0123) starting.."
cat > "$file" <<'LIST'
GROUP: dEQP-VK
GROUP: dEQP-VK.api
GROUP: dEQP-VK.api.smoke
TEST: dEQP-VK.api.smoke.create_sampler
TEST: dEQP-VK.api.smoke.triangle
GROUP: dEQP-VK.api.info
TEST: dEQP-VK.api.info.device
GROUP: dEQP-VK.memory
GROUP: dEQP-VK.memory.mapping
TEST: dEQP-VK.memory.mapping.a
TEST: dEQP-VK.memory.mapping.b
TEST: dEQP-VK.memory.mapping.c
TEST: dEQP-VK.memory.mapping.d
TEST: dEQP-VK.memory.mapping.e
GROUP: dEQP-VK.pipeline
TEST: dEQP-VK.pipeline.x
LIST
"#;

/// Records its arguments and environment, and writes a results.csv for the caselist it was given:
/// through Airlock the triangle crashes; natively mapping.c fails.
const FAKE_DEQP_RUNNER: &str = r#"#!/bin/sh
[ "$1" = run ] || exit 9
shift
output= caselist=
prev=
for arg in "$@"; do
  case "$prev" in
    --output) output="$arg" ;;
    --caselist) caselist="$arg" ;;
  esac
  prev="$arg"
done
mkdir -p "$output"
printf '%s\n' "$@" > "$output/args.txt"
env > "$output/env.txt"
[ -d "$XDG_RUNTIME_DIR" ] || exit 8
while read -r case; do
  status=Pass
  case "$VK_DRIVER_FILES" in
    *airlock*) [ "$case" = dEQP-VK.api.smoke.triangle ] && status=Crash ;;
    *) [ "$case" = dEQP-VK.memory.mapping.c ] && status=Fail ;;
  esac
  echo "$case,$status,0.01"
done < "$caselist" > "$output/results.csv"
exit 1
"#;

const CASELIST: &str = "\
# The smoke group, a half of mapping, one exact name, and a group this build lacks.
dEQP-VK.api.smoke.*
dEQP-VK.memory.mapping.* fraction=2
dEQP-VK.api.info.device
dEQP-VK.wsi.headless.*
";

struct Fixture {
    dir: tempfile::TempDir,
}

fn write_exe(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["bin", "cts/vulkan", "icd", "expect-none", "expect-listed"] {
            fs::create_dir_all(root.join(sub)).unwrap();
        }
        write_exe(&root.join("cts/deqp-vk"), FAKE_DEQP_VK);
        write_exe(&root.join("bin/deqp-runner"), FAKE_DEQP_RUNNER);
        fs::write(root.join("icd/airlock_icd.x86_64.json"), "{}").unwrap();
        fs::write(root.join("icd/lvp_icd.x86_64.json"), "{}").unwrap();
        fs::write(root.join("quick.txt"), CASELIST).unwrap();
        fs::write(
            root.join("expect-listed/airlock-fails.txt"),
            "# The triangle crashes the server until draws are carried.\n\
             dEQP-VK.api.smoke.triangle\n",
        )
        .unwrap();
        fs::write(
            root.join("expect-listed/airlock-skips.txt"),
            "# Takes too long on two cores.\ndEQP-VK.pipeline.*\n",
        )
        .unwrap();
        fs::write(
            root.join("expect-listed/airlock-flakes.txt"),
            "# Races with the server's worker.\ndEQP-VK.memory.mapping.e\n",
        )
        .unwrap();
        Fixture { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock-cts"));
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.path("bin")];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).unwrap())
            .env("DEQP_VK", self.path("cts/deqp-vk"))
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("AIRLOCK_HOST_ICD");
        cmd
    }

    fn run(&self, out: &str, expectations: &str, extra: &[&str]) -> Output {
        let mut cmd = self.command();
        cmd.arg("run")
            .arg(self.path("quick.txt"))
            .arg("--out")
            .arg(self.path(out))
            .arg("--airlock-icd")
            .arg(self.path("icd/airlock_icd.x86_64.json"))
            .arg("--native-icd")
            .arg(self.path("icd/lvp_icd.x86_64.json"))
            .arg("--expectations")
            .arg(self.path(expectations))
            .args(extra);
        cmd.output().unwrap()
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn calls(&self) -> usize {
        fs::read_to_string(self.path("cts/calls")).map_or(0, |s| s.lines().count())
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn has_line(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "missing line {line:?} in:\n{text}"
    );
}

fn env_var<'a>(env: &'a str, name: &str) -> Option<&'a str> {
    env.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
}

#[test]
fn unlisted_regression_fails_the_run() {
    let f = Fixture::new();
    let out = f.run(
        "out",
        "expect-none",
        &["--cts-tag", "vulkan-cts-1.3.5.2", "--", "--deqp-foo=1"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert_eq!(f.calls(), 1);

    // The caselist, expanded: every smoke case, every other mapping case, the exact name.
    assert_eq!(
        f.read("out/caselist.txt"),
        "dEQP-VK.api.info.device\ndEQP-VK.api.smoke.create_sampler\ndEQP-VK.api.smoke.triangle\n\
         dEQP-VK.memory.mapping.a\ndEQP-VK.memory.mapping.c\ndEQP-VK.memory.mapping.e\n"
    );
    assert!(
        stderr.contains("`dEQP-VK.wsi.headless.*`) matches no case"),
        "{stderr}"
    );

    // Each run chose its driver, and only its driver.
    let native_env = f.read("out/native/env.txt");
    let airlock_env = f.read("out/airlock/env.txt");
    let lvp = f.path("icd/lvp_icd.x86_64.json");
    let airlock = f.path("icd/airlock_icd.x86_64.json");
    for (env, icd) in [(&native_env, &lvp), (&airlock_env, &airlock)] {
        assert_eq!(env_var(env, "VK_DRIVER_FILES"), icd.to_str());
        assert_eq!(env_var(env, "VK_ICD_FILENAMES"), icd.to_str());
        assert_eq!(env_var(env, "MESA_SHADER_CACHE_DISABLE"), Some("true"));
        let runtime = env_var(env, "XDG_RUNTIME_DIR").expect("XDG_RUNTIME_DIR set");
        assert!(
            !Path::new(runtime).exists(),
            "the private runtime dir is removed"
        );
    }
    assert_eq!(env_var(&airlock_env, "AIRLOCK_HOST_ICD"), lvp.to_str());
    assert_eq!(env_var(&native_env, "AIRLOCK_HOST_ICD"), None);
    // A lost server ends deqp-vk as a crash would natively.
    assert_eq!(env_var(&airlock_env, "AIRLOCK_ABORT_ON_LOSS"), Some("1"));

    let args = f.read("out/airlock/args.txt");
    let args: Vec<&str> = args.lines().collect();
    let after = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
    assert_eq!(after("--deqp"), f.path("cts/deqp-vk").to_str().unwrap());
    assert_eq!(
        Path::new(after("--caselist")),
        f.path("out").canonicalize().unwrap().join("caselist.txt")
    );
    assert_eq!(after("--fraction"), "1");
    assert_eq!(after("--timeout"), "120");
    assert!(!args.contains(&"--skips") && !args.contains(&"--flakes"));
    let extra = &args[args.iter().position(|a| *a == "--").unwrap() + 1..];
    assert_eq!(
        extra,
        [
            "--deqp-log-images=disable",
            "--deqp-log-shader-sources=disable",
            "--deqp-foo=1"
        ]
    );

    let report = f.read("out/report.md");
    has_line(&report, "| CTS tag | vulkan-cts-1.3.5.2 |");
    has_line(&report, "| dEQP Core | git-fake0123 (0x0123) |");
    has_line(&report, "| cases | 6 | 6 |");
    has_line(&report, "| dEQP-VK.api.smoke.triangle | Crash | **no** |");
    has_line(&report, "| dEQP-VK.memory.mapping.c | Fail |");
    has_line(
        &report,
        "Regressions: 1 (1 unexpected) · Improvements: 1 · Fixed expectations: 0",
    );
    assert!(report.contains("Wall-time ratio (Airlock / native): **"));
    assert!(f.path("out/native/wall-seconds.txt").is_file());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("unexpected regression: dEQP-VK.api.smoke.triangle (Crash)"),
        "{stdout}"
    );

    // `compare` recomputes the same verdict from the run directory, running nothing (with the
    // same, empty, expectations: not the repository's own).
    let again = f
        .command()
        .arg("compare")
        .arg(f.path("out"))
        .arg("--expectations")
        .arg(f.path("expect-none"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    let again_report = text(&again.stdout);
    has_line(
        &again_report,
        "| dEQP-VK.api.smoke.triangle | Crash | **no** |",
    );
    has_line(&again_report, "| CTS tag | vulkan-cts-1.3.5.2 |");
    // With the regression listed, the same results pass.
    let listed = f
        .command()
        .arg("compare")
        .arg("--native")
        .arg(f.path("out/native/results.csv"))
        .arg("--airlock")
        .arg(f.path("out/airlock"))
        .arg("--expectations")
        .arg(f.path("expect-listed"))
        .arg("--report")
        .arg(f.path("compared.md"))
        .output()
        .unwrap();
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed.stderr));
    let compared = f.read("compared.md");
    assert!(compared.contains(
        "| dEQP-VK.api.smoke.triangle | Crash | yes: airlock-fails.txt:2 (The triangle crashes"
    ));
    assert_eq!(f.calls(), 1, "compare never starts deqp-vk");
}

#[test]
fn listed_regression_passes_and_lists_are_handed_to_deqp_runner() {
    let f = Fixture::new();
    let out = f.run(
        "out",
        "expect-listed",
        &["--fraction", "3", "--fraction-start", "2", "--jobs", "7"],
    );
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    let report = f.read("out/report.md");
    has_line(
        &report,
        "| dEQP-VK.api.smoke.triangle | Crash | yes: airlock-fails.txt:2 (The triangle crashes the server until draws are carried.) |",
    );
    has_line(
        &report,
        "Regressions: 1 (0 unexpected) · Improvements: 1 · Fixed expectations: 0",
    );

    for driver in ["native", "airlock"] {
        let args = f.read(&format!("out/{driver}/args.txt"));
        let args: Vec<&str> = args.lines().collect();
        let after = |flag: &str| args.iter().position(|a| *a == flag).map(|i| args[i + 1]);
        assert_eq!(after("--fraction"), Some("3"));
        assert_eq!(after("--fraction-start"), Some("2"));
        assert_eq!(after("--jobs"), Some("7"));
        let skips = after("--skips").expect("skips go to both runs");
        assert!(fs::read_to_string(skips)
            .unwrap()
            .lines()
            .any(|l| l == "^(?:dEQP-VK.pipeline.*)$"));
        // Flakes are Airlock's: only its run hears of them.
        assert_eq!(after("--flakes").is_some(), driver == "airlock");
    }
    let flakes = f.read("out/flakes.txt");
    assert!(
        flakes
            .lines()
            .any(|l| l == r"^dEQP\-VK\.memory\.mapping\.e$"),
        "{flakes}"
    );

    // A second run reuses the full case list it is given instead of asking deqp-vk again.
    let out = f.run(
        "out2",
        "expect-listed",
        &["--cases", f.path("out/dEQP-VK-cases.txt").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert_eq!(f.calls(), 1);
    assert_eq!(f.read("out2/caselist.txt"), f.read("out/caselist.txt"));
}

#[test]
fn fixed_expectation_is_reported() {
    let f = Fixture::new();
    fs::write(
        f.path("expect-none/airlock-fails.txt"),
        "# Create_sampler used to fail.\ndEQP-VK.api.smoke.create_sampler\n",
    )
    .unwrap();
    let out = f.run("out", "expect-none", &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "fixed, remove from expectations: dEQP-VK.api.smoke.create_sampler (airlock-fails.txt:2)"
        ),
        "{stdout}"
    );
}

#[test]
fn missing_deqp_vk_is_explained() {
    let f = Fixture::new();
    let out = f
        .command()
        .env_remove("DEQP_VK")
        .args(["run", "quick"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("DEQP_VK is not set"), "{stderr}");
    assert!(stderr.contains("cts/README.md"), "{stderr}");

    let out = f
        .command()
        .env("DEQP_VK", f.path("nowhere/deqp-vk"))
        .args(["run", "quick"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("nowhere/deqp-vk does not exist"),
        "{stderr}"
    );
}

#[test]
fn missing_deqp_runner_says_how_to_install_it() {
    let f = Fixture::new();
    let out = f
        .command()
        .env("PATH", f.path("icd"))
        .args(["run", "quick"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("deqp-runner is not installed"), "{stderr}");
    assert!(stderr.contains("cargo install deqp-runner"), "{stderr}");
}

#[test]
fn expectation_without_reason_stops_the_run_before_it_starts() {
    let f = Fixture::new();
    fs::write(
        f.path("expect-none/airlock-flakes.txt"),
        "dEQP-VK.memory.mapping.a\n",
    )
    .unwrap();
    let out = f.run("out", "expect-none", &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("airlock-flakes.txt:1: `dEQP-VK.memory.mapping.a` has no reason"),
        "{stderr}"
    );
    assert_eq!(f.calls(), 0);
}

/// Writes a shard's run directory as `run` leaves it.
fn write_shard(f: &Fixture, name: &str, native: &str, airlock: &str, commit: &str) {
    for (driver, results, seconds) in [("native", native, "60"), ("airlock", airlock, "90")] {
        fs::create_dir_all(f.path(&format!("{name}/{driver}"))).unwrap();
        fs::write(f.path(&format!("{name}/{driver}/results.csv")), results).unwrap();
        fs::write(
            f.path(&format!("{name}/{driver}/wall-seconds.txt")),
            seconds,
        )
        .unwrap();
    }
    fs::write(
        f.path(&format!("{name}/info.tsv")),
        format!(
            "suite\tcore\ndate\t2025-01-02\nAirlock commit\t{commit}\nCTS tag\tvulkan-cts-1.3.5.2\n"
        ),
    )
    .unwrap();
}

#[test]
fn merge_reports_the_shards_as_one_run() {
    let f = Fixture::new();
    write_shard(
        &f,
        "core-shard1-of2",
        "dEQP-VK.api.smoke.triangle,Pass,1\ndEQP-VK.memory.mapping.a,Pass,1\n",
        "dEQP-VK.api.smoke.triangle,Crash,1\ndEQP-VK.memory.mapping.a,Pass,1\n",
        "abc123",
    );
    write_shard(
        &f,
        "core-shard2-of2",
        "dEQP-VK.api.smoke.create_sampler,Pass,1\n",
        "dEQP-VK.api.smoke.create_sampler,Pass,1\n",
        "def456",
    );
    let merge = |expectations: &str, dirs: &[&str]| {
        f.command()
            .arg("merge")
            .args(dirs.iter().map(|d| f.path(d)))
            .arg("--expectations")
            .arg(f.path(expectations))
            .arg("--report")
            .arg(f.path("merged.md"))
            .output()
            .unwrap()
    };
    let shards = ["core-shard1-of2", "core-shard2-of2"];

    let out = merge("expect-none", &shards);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report = f.read("merged.md");
    has_line(&report, "# Airlock CTS: core, 2025-01-02");
    has_line(&report, "| shards | 2 |");
    has_line(
        &report,
        &format!(
            "| shard | {}: Airlock commit def456, CTS tag vulkan-cts-1.3.5.2 |",
            f.path("core-shard2-of2").display()
        ),
    );
    has_line(&report, "| cases | 3 | 3 |");
    has_line(&report, "| wall time | 2m 00s | 3m 00s |");
    has_line(&report, "| dEQP-VK.api.smoke.triangle | Crash | **no** |");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("unexpected regression: dEQP-VK.api.smoke.triangle (Crash)"),
        "{stdout}"
    );

    // With the regression listed, the merged run passes.
    let out = merge("expect-listed", &shards);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // A shard given twice has every case twice.
    let out = merge("expect-none", &["core-shard1-of2", "core-shard1-of2"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("`dEQP-VK.api.smoke.triangle` has a result in both"),
        "{stderr}"
    );

    // A directory without results stops the merge.
    fs::create_dir_all(f.path("empty")).unwrap();
    let out = merge("expect-none", &["core-shard1-of2", "empty"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("empty has no native/results.csv"),
        "{stderr}"
    );
}
