//! The `run`, `compare` and `merge` subcommands.

use crate::caselist::{CaseUniverse, CaselistSpec};
use crate::cli::{CompareArgs, MergeArgs, ReportArgs, RunArgs};
use crate::compare::Comparison;
use crate::env;
use crate::expectations::Expectations;
use crate::report::{self, ReportInfo};
use crate::results::Results;
use anyhow::{anyhow, bail, Context, Result};
use regex::Regex;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

/// Where deqp-vk writes its full case list; named by deqp-vk's package name.
const CASES_FILE: &str = "dEQP-VK-cases.txt";
const VERSION_FILE: &str = "deqp-vk-version.txt";
const CASELIST_FILE: &str = "caselist.txt";
const WALL_FILE: &str = "wall-seconds.txt";
const INFO_FILE: &str = "info.tsv";
const REPORT_FILE: &str = "report.md";

/// Large logs slow a two-core run down and are rarely read; a user's own `--` arguments win.
const DEFAULT_DEQP_ARGS: &[&str] = &[
    "--deqp-log-images=disable",
    "--deqp-log-shader-sources=disable",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Driver {
    Native,
    Airlock,
}

impl Driver {
    fn dir(self) -> &'static str {
        match self {
            Driver::Native => "native",
            Driver::Airlock => "airlock",
        }
    }
}

/// A private XDG_RUNTIME_DIR, removed when the run ends.
struct RuntimeDir(PathBuf);

impl RuntimeDir {
    fn create() -> Result<RuntimeDir> {
        use std::os::unix::fs::DirBuilderExt;
        // Short and under /tmp: sockets made there must fit in sun_path.
        let path = std::env::temp_dir().join(format!("airlock-cts-{}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(RuntimeDir(path))
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn resolve_caselist(arg: &str, root: Option<&Path>) -> Result<PathBuf> {
    let given = PathBuf::from(arg);
    if given.is_file() {
        return Ok(given);
    }
    if let Some(root) = root {
        let named = root.join("cts/caselists").join(format!("{arg}.txt"));
        if named.is_file() {
            return Ok(named);
        }
    }
    bail!("no caselist `{arg}`: give a path, or a name under cts/caselists/ such as `quick`")
}

fn resolve_airlock_icd(arg: Option<&Path>, root: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = arg {
        if !path.is_file() {
            bail!("--airlock-icd {} does not exist", path.display());
        }
        return Ok(std::path::absolute(path)?);
    }
    let root = root.ok_or_else(|| {
        anyhow!("not in an Airlock checkout: give Airlock's manifest with --airlock-icd")
    })?;
    ["release", "debug"]
        .iter()
        .map(|profile| {
            root.join("target")
                .join(profile)
                .join("airlock_icd.x86_64.json")
        })
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "no Airlock manifest in {}/target/{{release,debug}}: build it with \
                 `cargo build --release -p icd -p server`, or give --airlock-icd",
                root.display()
            )
        })
}

fn load_expectations(arg: Option<&Path>, root: Option<&Path>) -> Result<Expectations> {
    match (arg, root) {
        (Some(dir), _) => Expectations::load(dir),
        (None, Some(root)) => Expectations::load(&root.join("cts/expectations")),
        (None, None) => {
            eprintln!("airlock-cts: no expectations (not in a checkout, and no --expectations)");
            Ok(Expectations::default())
        }
    }
}

/// The expectations line of a report's header, when they came from a directory.
fn push_expectations(details: &mut Vec<(String, String)>, expectations: &Expectations) {
    if let Some(dir) = &expectations.dir {
        details.push(("expectations".to_string(), dir.display().to_string()));
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

/// The deqp-vk version line ("dEQP Core git-… (0x…) starting..") it prints on start.
fn deqp_core_version(stdout: &str) -> Option<String> {
    let re = Regex::new(r"dEQP Core (.+?) starting").expect("valid regex");
    re.captures(stdout).map(|c| c[1].trim().to_string())
}

/// deqp-vk's full case list, and its version when known: from `--cases`, from an earlier run in
/// the same output directory that is newer than the binary, or fresh from deqp-vk.
fn full_case_list(
    deqp_vk: &Path,
    given: Option<&Path>,
    out: &Path,
    driver_env: &[(&str, &Path)],
) -> Result<(CaseUniverse, Option<String>)> {
    let version_path = out.join(VERSION_FILE);
    let cached_version = || {
        std::fs::read_to_string(&version_path)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if let Some(path) = given {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --cases {}", path.display()))?;
        return Ok((
            CaseUniverse::parse(&text, &path.display().to_string())?,
            None,
        ));
    }
    let cached = out.join(CASES_FILE);
    if let (Some(list), Some(binary)) = (modified(&cached), modified(deqp_vk)) {
        if list >= binary {
            eprintln!("airlock-cts: reusing {}", cached.display());
            let text = std::fs::read_to_string(&cached)?;
            return Ok((
                CaseUniverse::parse(&text, &cached.display().to_string())?,
                cached_version(),
            ));
        }
    }

    eprintln!("airlock-cts: asking deqp-vk for its case list");
    let bin_dir = deqp_vk.parent().unwrap_or(Path::new("/"));
    let started = SystemTime::now();
    let output = Command::new(deqp_vk)
        .current_dir(bin_dir)
        .arg("--deqp-runmode=txt-caselist")
        .arg(format!(
            "--deqp-caselist-export-file={}/${{packageName}}-cases.${{typeExtension}}",
            out.display()
        ))
        .envs(driver_env.iter().copied())
        .output()
        .with_context(|| format!("starting {}", deqp_vk.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "{} --deqp-runmode=txt-caselist failed ({}):\n{}{}",
            deqp_vk.display(),
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if !cached.is_file() {
        // A deqp-vk that ignores the export-file option writes into its working directory.
        let fallback = bin_dir.join(CASES_FILE);
        if modified(&fallback).is_some_and(|t| t >= started) {
            std::fs::copy(&fallback, &cached)
                .with_context(|| format!("copying {}", fallback.display()))?;
        } else {
            bail!(
                "deqp-vk --deqp-runmode=txt-caselist wrote no {CASES_FILE} (in {} or {})",
                out.display(),
                bin_dir.display()
            );
        }
    }
    let version = deqp_core_version(&stdout);
    if let Some(v) = &version {
        std::fs::write(&version_path, format!("{v}\n"))?;
    }
    let text = std::fs::read_to_string(&cached)?;
    Ok((
        CaseUniverse::parse(&text, &cached.display().to_string())?,
        version,
    ))
}

/// The environment that picks one driver.
fn driver_env<'a>(icd: &'a Path, runtime_dir: Option<&'a Path>) -> Vec<(&'static str, &'a Path)> {
    let mut vars = vec![
        ("VK_DRIVER_FILES", icd),
        ("VK_ICD_FILENAMES", icd),
        // The on-disk shader cache is machine-wide: it would carry work between the runs.
        ("MESA_SHADER_CACHE_DISABLE", Path::new("true")),
    ];
    if let Some(dir) = runtime_dir {
        vars.push(("XDG_RUNTIME_DIR", dir));
    }
    vars
}

fn deqp_args(user: &[String]) -> Vec<String> {
    let mut args: Vec<String> = DEFAULT_DEQP_ARGS
        .iter()
        .filter(|d| {
            let option = d.split('=').next().unwrap_or(d);
            !user.iter().any(|u| u.split('=').next() == Some(option))
        })
        .map(|d| d.to_string())
        .collect();
    args.extend(user.iter().cloned());
    args
}

/// One deqp-runner invocation's settings, the same for both drivers but for the manifest.
struct RunnerCall<'a> {
    runner: &'a Path,
    deqp_vk: &'a Path,
    caselist: &'a Path,
    jobs: usize,
    args: &'a RunArgs,
    skips: Option<&'a Path>,
    flakes: Option<&'a Path>,
    native_icd: &'a Path,
    runtime_dir: Option<&'a Path>,
}

impl RunnerCall<'_> {
    /// Runs the caselist on one driver into `out/<driver>/`; returns the wall time in seconds.
    fn run(&self, driver: Driver, out: &Path, icd: &Path) -> Result<f64> {
        let dir = out.join(driver.dir());
        std::fs::create_dir_all(&dir)?;
        let results = dir.join("results.csv");
        if results.exists() {
            std::fs::remove_file(&results)?;
        }
        let mut cmd = Command::new(self.runner);
        cmd.arg("run")
            .arg("--deqp")
            .arg(self.deqp_vk)
            .arg("--caselist")
            .arg(self.caselist)
            .arg("--output")
            .arg(&dir)
            .arg("--jobs")
            .arg(self.jobs.to_string())
            .arg("--timeout")
            .arg(self.args.timeout.to_string())
            .arg("--fraction")
            .arg(self.args.fraction.to_string())
            .arg("--fraction-start")
            .arg(self.args.fraction_start.to_string())
            // Every unexpected result in deqp-runner's own summary, not the first 25.
            .arg("--summary-limit")
            .arg("0");
        if let Some(skips) = self.skips {
            cmd.arg("--skips").arg(skips);
        }
        if let (Driver::Airlock, Some(flakes)) = (driver, self.flakes) {
            cmd.arg("--flakes").arg(flakes);
        }
        cmd.arg("--")
            .args(deqp_args(&self.args.deqp_args))
            .envs(driver_env(icd, self.runtime_dir))
            // Only the chosen manifest: an extra driver would change what deqp-vk picks.
            .env_remove("VK_ADD_DRIVER_FILES");
        if driver == Driver::Airlock {
            if std::env::var_os("AIRLOCK_HOST_ICD").is_none() {
                // The server drives the same lavapipe the native run uses.
                cmd.env("AIRLOCK_HOST_ICD", self.native_icd);
            }
            // A server that dies (lavapipe crashing on a case) ends deqp-vk, as lavapipe's
            // crash does natively: deqp-runner records the case as a crash and goes on in a
            // fresh process, instead of every later case failing on a lost device.
            cmd.env("AIRLOCK_ABORT_ON_LOSS", "1");
        }
        eprintln!("airlock-cts: running {} ({})", driver.dir(), icd.display());
        let start = Instant::now();
        let status = cmd
            .status()
            .with_context(|| format!("starting {}", self.runner.display()))?;
        let seconds = start.elapsed().as_secs_f64();
        std::fs::write(dir.join(WALL_FILE), format!("{seconds:.3}\n"))?;
        // deqp-runner exits non-zero whenever a case fails; only missing results are an error.
        if !results.is_file() {
            bail!(
                "deqp-runner ({}) exited with {status} and wrote no {}",
                driver.dir(),
                results.display()
            );
        }
        Ok(seconds)
    }
}

pub fn run(args: &RunArgs) -> Result<u8> {
    // Everything a long run needs is checked before it starts.
    let deqp_vk = env::deqp_vk()?;
    let runner =
        env::find_on_path("deqp-runner").ok_or_else(|| anyhow!(env::DEQP_RUNNER_MISSING))?;
    if args.fraction_start > args.fraction {
        bail!("--fraction-start must be between 1 and --fraction");
    }
    let root = env::repo_root();
    let root = root.as_deref();
    let caselist_path = resolve_caselist(&args.caselist, root)?;
    let spec = CaselistSpec::load(&caselist_path)?;
    let suite = caselist_path
        .file_stem()
        .map_or_else(|| "suite".to_string(), |s| s.to_string_lossy().into_owned());
    let airlock_icd = resolve_airlock_icd(args.airlock_icd.as_deref(), root)?;
    if !args.native_icd.is_file() {
        bail!(
            "the native manifest {} does not exist: install lavapipe (Debian: mesa-vulkan-drivers) \
             or give --native-icd",
            args.native_icd.display()
        );
    }
    let native_icd = std::path::absolute(&args.native_icd)?;
    let expectations = load_expectations(args.expectations.as_deref(), root)?;
    if !deqp_vk.parent().is_some_and(|d| d.join("vulkan").is_dir()) {
        eprintln!(
            "airlock-cts: warning: no vulkan/ data directory next to {}; cases that read data \
             files will fail",
            deqp_vk.display()
        );
    }

    let (date, stamp) = env::utc_now();
    let out = match (&args.out, root) {
        (Some(out), _) => out.clone(),
        (None, Some(root)) => {
            let shard = if args.fraction > 1 {
                format!("-shard{}of{}", args.fraction_start, args.fraction)
            } else {
                String::new()
            };
            root.join("cts/out").join(format!("{suite}-{stamp}{shard}"))
        }
        (None, None) => bail!("not in an Airlock checkout: give an output directory with --out"),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let out = out.canonicalize()?;
    eprintln!("airlock-cts: output in {}", out.display());

    let runtime_dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => None,
        _ => Some(RuntimeDir::create()?),
    };
    let runtime = runtime_dir.as_ref().map(|d| d.0.as_path());

    let (universe, deqp_version) = full_case_list(
        &deqp_vk,
        args.cases.as_deref(),
        &out,
        &driver_env(&native_icd, runtime),
    )?;
    let expansion = spec.expand(&universe)?;
    for rule in &expansion.rules {
        eprintln!(
            "airlock-cts:   line {:>3}: {:>7} of {:>7}  {}",
            rule.line, rule.selected, rule.matched, rule.text
        );
    }
    for rule in expansion.empty_rules() {
        eprintln!(
            "airlock-cts: note: line {} (`{}`) matches no case of this deqp-vk",
            rule.line, rule.text
        );
    }
    if expansion.cases.is_empty() {
        bail!("{} selects no case", caselist_path.display());
    }
    eprintln!(
        "airlock-cts: {} cases of {} in deqp-vk",
        expansion.cases.len(),
        universe.len()
    );
    let caselist_file = out.join(CASELIST_FILE);
    std::fs::write(&caselist_file, expansion.to_file())?;
    let skips_file = out.join("skips.txt");
    let flakes_file = out.join("flakes.txt");
    std::fs::write(&skips_file, expectations.skips.to_runner_file())?;
    std::fs::write(&flakes_file, expectations.flakes.to_runner_file())?;

    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let call = RunnerCall {
        runner: &runner,
        deqp_vk: &deqp_vk,
        caselist: &caselist_file,
        jobs,
        args,
        skips: (!expectations.skips.is_empty()).then_some(skips_file.as_path()),
        flakes: (!expectations.flakes.is_empty()).then_some(flakes_file.as_path()),
        native_icd: &native_icd,
        runtime_dir: runtime,
    };
    let native_seconds = call.run(Driver::Native, &out, &native_icd)?;
    let airlock_seconds = call.run(Driver::Airlock, &out, &airlock_icd)?;
    drop(runtime_dir);

    let native = Results::load(&results_path(&out, Driver::Native))?;
    let airlock = Results::load(&results_path(&out, Driver::Airlock))?;
    let comparison = Comparison::new(&native, &airlock, &expectations);

    let shard = if args.fraction > 1 {
        format!(
            ", of which this is shard {} of {}",
            args.fraction_start, args.fraction
        )
    } else {
        String::new()
    };
    let mut details = vec![
        (
            "Airlock commit".to_string(),
            args.airlock_commit
                .clone()
                .unwrap_or_else(|| env::git_commit(root)),
        ),
        (
            "CTS tag".to_string(),
            args.cts_tag
                .clone()
                .unwrap_or_else(|| "not given (--cts-tag)".to_string()),
        ),
        (
            "dEQP Core".to_string(),
            deqp_version.unwrap_or_else(|| "unknown".to_string()),
        ),
        ("deqp-vk".to_string(), deqp_vk.display().to_string()),
        (
            "caselist".to_string(),
            format!(
                "{}: {} cases{shard}",
                caselist_path.display(),
                expansion.cases.len()
            ),
        ),
        (
            "native driver".to_string(),
            native_icd.display().to_string(),
        ),
        (
            "Airlock driver".to_string(),
            airlock_icd.display().to_string(),
        ),
        (
            "deqp-runner".to_string(),
            format!("--jobs {jobs} --timeout {}", args.timeout),
        ),
    ];
    push_expectations(&mut details, &expectations);
    if !args.deqp_args.is_empty() {
        details.push(("deqp-vk arguments".to_string(), args.deqp_args.join(" ")));
    }
    let info = ReportInfo {
        suite,
        date,
        details,
        native_seconds: Some(native_seconds),
        airlock_seconds: Some(airlock_seconds),
    };
    write_info(&out.join(INFO_FILE), &info)?;
    let text = report::render(&info, &comparison);
    let report_path = out.join(REPORT_FILE);
    std::fs::write(&report_path, &text)?;
    print_summary(&info, &comparison);
    println!("report: {}", report_path.display());
    Ok(comparison.exit_code())
}

/// The header of a run's report, so that `compare RUN_DIR` can show it again.
fn write_info(path: &Path, info: &ReportInfo) -> Result<()> {
    let mut text = format!("suite\t{}\ndate\t{}\n", info.suite, info.date);
    for (what, value) in &info.details {
        text.push_str(&format!("{what}\t{value}\n"));
    }
    Ok(std::fs::write(path, text)?)
}

fn read_info(path: &Path, info: &mut ReportInfo) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for line in text.lines() {
        match line.split_once('\t') {
            Some(("suite", v)) => info.suite = v.to_string(),
            Some(("date", v)) => info.date = v.to_string(),
            Some((k, v)) => info.details.push((k.to_string(), v.to_string())),
            None => {}
        }
    }
}

fn print_summary(info: &ReportInfo, c: &Comparison) {
    let unexpected: Vec<_> = c.unexpected_regressions().collect();
    println!(
        "regressions: {} ({} unexpected), improvements: {}, fixed expectations: {}",
        c.regressions.len(),
        unexpected.len(),
        c.improvements.len(),
        c.fixed.len()
    );
    if let Some(r) = report::ratio(info) {
        println!("wall-time ratio (Airlock / native): {r:.2}");
    }
    for r in &unexpected {
        println!(
            "unexpected regression: {} ({})",
            r.case,
            r.airlock
                .map_or_else(|| "no result".to_string(), |s| s.to_string())
        );
    }
    for f in &c.fixed {
        println!("fixed, remove from expectations: {} ({})", f.case, f.entry);
    }
}

/// A run directory's results.csv for one driver.
fn results_path(run_dir: &Path, driver: Driver) -> PathBuf {
    run_dir.join(driver.dir()).join("results.csv")
}

fn results_csv(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("results.csv")
    } else {
        path.to_path_buf()
    }
}

fn wall_seconds(results: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(results.parent()?.join(WALL_FILE)).ok()?;
    text.trim().parse().ok()
}

/// One driver's results, and the wall time of its run when known.
struct DriverResults {
    results: Results,
    seconds: Option<f64>,
}

impl DriverResults {
    /// A results.csv, and the wall time `run` wrote beside it.
    fn load(path: &Path) -> Result<DriverResults> {
        Ok(DriverResults {
            results: Results::load(path)?,
            seconds: wall_seconds(path),
        })
    }

    /// Shards as one, each named by its source: their results concatenated, their wall times
    /// summed (unknown when any shard's is).
    fn concat(shards: Vec<(String, DriverResults)>) -> Result<DriverResults> {
        let seconds = shards.iter().map(|(_, shard)| shard.seconds).sum();
        let results = Results::concat(
            shards
                .into_iter()
                .map(|(source, shard)| (source, shard.results))
                .collect(),
        )?;
        Ok(DriverResults { results, seconds })
    }
}

/// Both drivers' results and the report's header: a run read back, or several merged.
struct RunResults {
    native: DriverResults,
    airlock: DriverResults,
    /// Suite and date are empty when nothing said what they are.
    info: ReportInfo,
}

impl RunResults {
    fn from_files(native: &Path, airlock: &Path) -> Result<RunResults> {
        Ok(RunResults {
            native: DriverResults::load(native)?,
            airlock: DriverResults::load(airlock)?,
            info: ReportInfo::default(),
        })
    }

    /// A run's output directory, with the header its run wrote there.
    fn load(dir: &Path) -> Result<RunResults> {
        let [native, airlock] = [Driver::Native, Driver::Airlock].map(|d| results_path(dir, d));
        for path in [&native, &airlock] {
            if !path.is_file() {
                bail!(
                    "{} has no {}: not a run directory, or its run did not finish",
                    dir.display(),
                    path.strip_prefix(dir).unwrap_or(path).display()
                );
            }
        }
        let mut run = RunResults::from_files(&native, &airlock)?;
        read_info(&dir.join(INFO_FILE), &mut run.info);
        Ok(run)
    }

    /// A header value of the run, as its info file gave it.
    fn detail(&self, what: &str) -> &str {
        self.info
            .details
            .iter()
            .find(|(w, _)| w == what)
            .map_or("unknown", |(_, v)| v.as_str())
    }

    /// The shards of a sharded run as one run: the header names each shard, with the Airlock
    /// commit and CTS tag it ran; the suite is the first one the shards name, the date the latest.
    fn merge(dirs: &[PathBuf], reruns: &[PathBuf]) -> Result<RunResults> {
        let mut info = ReportInfo {
            details: vec![("shards".to_string(), dirs.len().to_string())],
            ..ReportInfo::default()
        };
        let mut native = Vec::new();
        let mut airlock = Vec::new();
        for dir in dirs {
            let shard = RunResults::load(dir)?;
            let name = dir.display().to_string();
            info.details.push((
                "shard".to_string(),
                format!(
                    "{name}: Airlock commit {}, CTS tag {}",
                    shard.detail("Airlock commit"),
                    shard.detail("CTS tag")
                ),
            ));
            if info.suite.is_empty() {
                info.suite = shard.info.suite;
            }
            if shard.info.date > info.date {
                info.date = shard.info.date;
            }
            native.push((name.clone(), shard.native));
            airlock.push((name, shard.airlock));
        }
        let mut run = RunResults {
            native: DriverResults::concat(native)?,
            airlock: DriverResults::concat(airlock)?,
            info,
        };
        for dir in reruns {
            let rerun = RunResults::load(dir)?;
            let name = dir.display().to_string();
            let header = format!(
                "{name}: Airlock commit {}, CTS tag {}",
                rerun.detail("Airlock commit"),
                rerun.detail("CTS tag")
            );
            let (n, n_out) = run.native.results.supersede(rerun.native.results);
            let (a, a_out) = run.airlock.results.supersede(rerun.airlock.results);
            run.info.details.push((
                "rerun".to_string(),
                format!(
                    "{header}; its results replace the shards' for {n} cases natively and {a} \
                     through Airlock; {n_out} and {a_out} of its cases are in no shard, left out"
                ),
            ));
        }
        Ok(run)
    }

    /// Judges Airlock's results against native's and writes the report: to `--report`, with a
    /// summary on standard output, or else to standard output. Returns the exit status.
    fn report(
        self,
        expectations: &Expectations,
        suite: Option<&str>,
        output: &ReportArgs,
    ) -> Result<u8> {
        let comparison = Comparison::new(&self.native.results, &self.airlock.results, expectations);
        let mut info = self.info;
        if let Some(suite) = suite {
            info.suite = suite.to_string();
        }
        if info.date.is_empty() {
            info.date = env::utc_now().0;
        }
        info.native_seconds = self.native.seconds;
        info.airlock_seconds = self.airlock.seconds;
        let text = report::render(&info, &comparison);
        match &output.report {
            Some(path) => {
                std::fs::write(path, &text)
                    .with_context(|| format!("writing {}", path.display()))?;
                print_summary(&info, &comparison);
                println!("report: {}", path.display());
            }
            None => print!("{text}"),
        }
        Ok(comparison.exit_code())
    }
}

fn report_expectations(output: &ReportArgs) -> Result<Expectations> {
    load_expectations(output.expectations.as_deref(), env::repo_root().as_deref())
}

pub fn compare(args: &CompareArgs) -> Result<u8> {
    let (native_path, airlock_path) = match (&args.run_dir, &args.native, &args.airlock) {
        (Some(dir), _, _) => (
            results_path(dir, Driver::Native),
            results_path(dir, Driver::Airlock),
        ),
        (None, Some(n), Some(a)) => (results_csv(n), results_csv(a)),
        _ => bail!("give a run directory, or both --native and --airlock"),
    };
    let mut run = match &args.run_dir {
        Some(dir) => RunResults::load(dir)?,
        None => RunResults::from_files(&native_path, &airlock_path)?,
    };
    let expectations = report_expectations(&args.output)?;
    if run.info.suite.is_empty() {
        let dir_name = match &args.run_dir {
            Some(dir) => dir
                .canonicalize()?
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
            None => None,
        };
        run.info.suite = dir_name.unwrap_or_else(|| "compare".to_string());
    }
    if run.info.details.is_empty() {
        run.info.details = vec![
            (
                "native results".to_string(),
                native_path.display().to_string(),
            ),
            (
                "Airlock results".to_string(),
                airlock_path.display().to_string(),
            ),
        ];
        push_expectations(&mut run.info.details, &expectations);
    }
    run.report(&expectations, args.suite.as_deref(), &args.output)
}

pub fn merge(args: &MergeArgs) -> Result<u8> {
    let mut run = RunResults::merge(&args.run_dirs, &args.rerun)?;
    let expectations = report_expectations(&args.output)?;
    if run.info.suite.is_empty() {
        run.info.suite = "merge".to_string();
    }
    push_expectations(&mut run.info.details, &expectations);
    run.report(&expectations, args.suite.as_deref(), &args.output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Status;

    #[test]
    fn reads_the_deqp_version_line() {
        let out = "Writing test log into /dev/null\n\
                   dEQP Core git-6d5bc33d9fad6a0f1bfbf3b5bb16b79e0c3cc8c8 (0x6d5bc33d) starting..\n  \
                   target implementation = 'Default'\n";
        assert_eq!(
            deqp_core_version(out).as_deref(),
            Some("git-6d5bc33d9fad6a0f1bfbf3b5bb16b79e0c3cc8c8 (0x6d5bc33d)")
        );
        assert_eq!(deqp_core_version("nothing"), None);
    }

    /// A run directory as `run` leaves it: results, wall times when given, an info file.
    fn shard(
        root: &Path,
        name: &str,
        native: &str,
        airlock: &str,
        seconds: [Option<&str>; 2],
        info: &str,
    ) -> PathBuf {
        let dir = root.join(name);
        for (driver, results, wall) in [
            ("native", native, seconds[0]),
            ("airlock", airlock, seconds[1]),
        ] {
            std::fs::create_dir_all(dir.join(driver)).unwrap();
            std::fs::write(dir.join(driver).join("results.csv"), results).unwrap();
            if let Some(wall) = wall {
                std::fs::write(dir.join(driver).join(WALL_FILE), wall).unwrap();
            }
        }
        std::fs::write(dir.join(INFO_FILE), info).unwrap();
        dir
    }

    /// A shard where one case passes on both drivers.
    fn passing(root: &Path, name: &str, case: &str, seconds: [Option<&str>; 2]) -> PathBuf {
        let results = format!("{case},Pass\n");
        shard(root, name, &results, &results, seconds, "")
    }

    #[test]
    fn merge_concatenates_shards_and_sums_wall_times() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = [
            shard(
                tmp.path(),
                "core-shard1-of2",
                "dEQP-VK.api.a,Pass,1\ndEQP-VK.memory.c,Fail,1\n",
                "dEQP-VK.api.a,Crash,1\ndEQP-VK.memory.c,Pass,1\n",
                [Some("100.5\n"), Some("300\n")],
                "suite\tcore\ndate\t2025-01-01\nAirlock commit\tabc123\nCTS tag\tvulkan-cts-1.3.5.2\n",
            ),
            shard(
                tmp.path(),
                "core-shard2-of2",
                "dEQP-VK.api.b,Pass,1\n",
                "dEQP-VK.api.b,Pass,1\n",
                [Some("50\n"), Some("150.25\n")],
                "suite\tcore\ndate\t2025-01-03\nAirlock commit\tdef456 (with uncommitted changes)\n",
            ),
        ];
        let run = RunResults::merge(&dirs, &[]).unwrap();
        let cases = |d: &DriverResults| d.results.cases.keys().cloned().collect::<Vec<_>>();
        let all = ["dEQP-VK.api.a", "dEQP-VK.api.b", "dEQP-VK.memory.c"];
        assert_eq!(cases(&run.native), all);
        assert_eq!(cases(&run.airlock), all);
        assert_eq!(
            run.airlock.results.status("dEQP-VK.api.a"),
            Some(Status::CRASH)
        );
        assert_eq!(run.native.seconds, Some(150.5));
        assert_eq!(run.airlock.seconds, Some(450.25));
        assert_eq!(run.info.suite, "core");
        assert_eq!(run.info.date, "2025-01-03");
        let detail = |what: &str, value: String| (what.to_string(), value);
        assert_eq!(
            run.info.details,
            [
                detail("shards", "2".into()),
                detail(
                    "shard",
                    format!(
                        "{}: Airlock commit abc123, CTS tag vulkan-cts-1.3.5.2",
                        dirs[0].display()
                    )
                ),
                detail(
                    "shard",
                    format!(
                        "{}: Airlock commit def456 (with uncommitted changes), CTS tag unknown",
                        dirs[1].display()
                    )
                ),
            ]
        );
        let c = Comparison::new(
            &run.native.results,
            &run.airlock.results,
            &Expectations::default(),
        );
        assert_eq!(c.regressions.len(), 1);
        assert_eq!(c.improvements.len(), 1);
    }

    #[test]
    fn merged_wall_time_is_unknown_when_a_shard_lacks_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = [
            passing(tmp.path(), "s1", "dEQP-VK.a", [Some("10"), Some("20")]),
            passing(tmp.path(), "s2", "dEQP-VK.b", [Some("5"), None]),
        ];
        let run = RunResults::merge(&dirs, &[]).unwrap();
        assert_eq!(run.native.seconds, Some(15.0));
        assert_eq!(run.airlock.seconds, None);
        // No info files: neither suite nor date is known, and the shards' values are unknown.
        assert_eq!((run.info.suite.as_str(), run.info.date.as_str()), ("", ""));
        assert!(run.info.details[1]
            .1
            .ends_with("s1: Airlock commit unknown, CTS tag unknown"));
    }

    #[test]
    fn a_rerun_replaces_the_results_of_its_cases() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = [
            shard(
                tmp.path(),
                "s1",
                "dEQP-VK.a,Pass\ndEQP-VK.b,Pass\n",
                "dEQP-VK.a,Skip\ndEQP-VK.b,Pass\n",
                [Some("10"), Some("20")],
                "Airlock commit\told\n",
            ),
            passing(tmp.path(), "s2", "dEQP-VK.c", [Some("1"), Some("2")]),
        ];
        let rerun = shard(
            tmp.path(),
            "fixed",
            "dEQP-VK.a,Pass\n",
            "dEQP-VK.a,Pass\n",
            [Some("100"), Some("100")],
            "Airlock commit\tnew\nCTS tag\tvulkan-cts-1.3.5.2\n",
        );
        let run = RunResults::merge(&dirs, std::slice::from_ref(&rerun)).unwrap();
        assert_eq!(run.airlock.results.status("dEQP-VK.a"), Some(Status::PASS));
        assert_eq!(run.airlock.results.cases.len(), 3);
        assert_eq!(
            (run.native.seconds, run.airlock.seconds),
            (Some(11.0), Some(22.0))
        );
        assert_eq!(
            run.info.details.last().unwrap().1,
            format!(
                "{}: Airlock commit new, CTS tag vulkan-cts-1.3.5.2; its results replace the \
                 shards' for 1 cases natively and 1 through Airlock; 0 and 0 of its cases are in \
                 no shard, left out",
                rerun.display()
            )
        );
        let c = Comparison::new(
            &run.native.results,
            &run.airlock.results,
            &Expectations::default(),
        );
        assert!(c.regressions.is_empty());
        // A rerun only replaces: a case no shard ran is left out, and counted.
        let wider = shard(
            tmp.path(),
            "wider",
            "dEQP-VK.a,Fail\ndEQP-VK.z,Pass\n",
            "dEQP-VK.a,Fail\ndEQP-VK.z,Pass\n",
            [None, None],
            "",
        );
        let run = RunResults::merge(&dirs, std::slice::from_ref(&wider)).unwrap();
        assert_eq!(run.native.results.status("dEQP-VK.a"), Some(Status::FAIL));
        assert_eq!(run.native.results.status("dEQP-VK.z"), None);
        assert!(run.info.details.last().unwrap().1.ends_with(
            "for 1 cases natively and 1 through Airlock; 1 and 1 of its cases are in no shard, \
             left out"
        ));
    }

    #[test]
    fn merge_refuses_a_case_in_two_shards() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = [
            passing(tmp.path(), "s1", "dEQP-VK.a", [None, None]),
            passing(tmp.path(), "s2", "dEQP-VK.b", [None, None]),
            shard(
                tmp.path(),
                "s3",
                "dEQP-VK.a,Fail\n",
                "dEQP-VK.c,Pass\n",
                [None, None],
                "",
            ),
        ];
        let err = RunResults::merge(&dirs, &[]).err().unwrap().to_string();
        assert_eq!(
            err,
            format!(
                "`dEQP-VK.a` has a result in both {} and {}",
                dirs[0].display(),
                dirs[2].display()
            )
        );
    }

    #[test]
    fn merge_names_a_directory_without_results() {
        let tmp = tempfile::tempdir().unwrap();
        let good = shard(
            tmp.path(),
            "s1",
            "dEQP-VK.a,Pass\n",
            "dEQP-VK.a,Pass\n",
            [None, None],
            "",
        );
        let half = tmp.path().join("s2");
        std::fs::create_dir_all(half.join("native")).unwrap();
        std::fs::write(half.join("native/results.csv"), "dEQP-VK.b,Pass\n").unwrap();
        let err = RunResults::merge(&[good, half.clone()], &[])
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            format!(
                "{} has no airlock/results.csv: not a run directory, or its run did not finish",
                half.display()
            )
        );
    }

    #[test]
    fn user_deqp_args_override_the_defaults() {
        assert_eq!(deqp_args(&[]), DEFAULT_DEQP_ARGS);
        assert_eq!(
            deqp_args(&["--deqp-log-images=enable".to_string()]),
            [
                "--deqp-log-shader-sources=disable",
                "--deqp-log-images=enable"
            ]
        );
    }
}
