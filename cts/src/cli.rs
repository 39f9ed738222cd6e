//! The command line.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

pub const DEFAULT_NATIVE_ICD: &str = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json";

#[derive(Debug, Parser)]
#[command(
    name = "airlock-cts",
    about = "Runs the Khronos Vulkan CTS (deqp-vk) through Airlock and on native lavapipe, and \
             compares the two",
    after_help = "Exit status: 0 when Airlock has no regression outside the expectations, 1 when \
                  it has, 2 when the run itself failed."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a caselist with deqp-runner natively, then through Airlock, and write the report.
    ///
    /// deqp-vk is the binary named by the DEQP_VK environment variable; deqp-runner must be on
    /// PATH.
    Run(RunArgs),
    /// Recompute the report from two existing results.csv files, running nothing.
    Compare(CompareArgs),
    /// Merge the run directories of a sharded run (`run --fraction N --fraction-start K`, one
    /// per K) into one report, running nothing.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A caselist: a name under cts/caselists/ (`quick`, `full`) or a path to one.
    pub caselist: String,

    /// Output directory [default: cts/out/<suite>-<UTC timestamp>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Airlock's loader manifest [default: target/release/airlock_icd.x86_64.json, then
    /// target/debug/, in the checkout].
    #[arg(long, value_name = "PATH")]
    pub airlock_icd: Option<PathBuf>,

    /// The native driver's loader manifest.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_NATIVE_ICD)]
    pub native_icd: PathBuf,

    /// Directory holding airlock-fails.txt, airlock-skips.txt and airlock-flakes.txt
    /// [default: cts/expectations in the checkout].
    #[arg(long, value_name = "DIR")]
    pub expectations: Option<PathBuf>,

    /// deqp-vk processes at once [default: the number of CPUs].
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,

    /// Seconds one case may take before deqp-runner calls it a Timeout.
    #[arg(long, value_name = "SECONDS", default_value_t = 120.0, value_parser = positive_seconds)]
    pub timeout: f64,

    /// Shard the run: run one case in every N (of deqp-runner's shuffled order).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub fraction: u32,

    /// Which shard: start at the Kth case (1 ≤ K ≤ N).
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub fraction_start: u32,

    /// The CTS release deqp-vk was built from, for the report (e.g. vulkan-cts-1.3.5.2).
    #[arg(long, value_name = "TAG")]
    pub cts_tag: Option<String>,

    /// The commit the Airlock driver under test was built from, for the report [default: the
    /// checkout's HEAD, which is right only when --airlock-icd is this checkout's build].
    #[arg(long, value_name = "COMMIT")]
    pub airlock_commit: Option<String>,

    /// A full case list to expand the caselist against (deqp-vk's dEQP-VK-cases.txt from an
    /// earlier run), instead of asking deqp-vk for one.
    #[arg(long, value_name = "FILE")]
    pub cases: Option<PathBuf>,

    /// Extra arguments for deqp-vk, after `--`.
    #[arg(last = true, value_name = "DEQP_ARGS")]
    pub deqp_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// A run's output directory (with native/ and airlock/ inside).
    #[arg(conflicts_with_all = ["native", "airlock"], required_unless_present_all = ["native", "airlock"])]
    pub run_dir: Option<PathBuf>,

    /// Native results: a results.csv, or the directory holding it.
    #[arg(long, value_name = "PATH", requires = "airlock")]
    pub native: Option<PathBuf>,

    /// Airlock results: a results.csv, or the directory holding it.
    #[arg(long, value_name = "PATH", requires = "native")]
    pub airlock: Option<PathBuf>,

    /// Suite name for the report's title [default: the run directory's name].
    #[arg(long)]
    pub suite: Option<String>,

    #[command(flatten)]
    pub output: ReportArgs,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' output directories (each with native/ and airlock/ inside).
    #[arg(required = true, value_name = "RUN_DIR")]
    pub run_dirs: Vec<PathBuf>,

    /// Suite name for the report's title [default: the suite the shards were run from].
    #[arg(long)]
    pub suite: Option<String>,

    /// A later run of some of the shards' cases (after a fix, say), whose results replace
    /// theirs on both drivers (its cases no shard ran are left out); the report names it and
    /// its commit. Wall times stay the shards'.
    #[arg(long, value_name = "RUN_DIR")]
    pub rerun: Vec<PathBuf>,

    #[command(flatten)]
    pub output: ReportArgs,
}

/// What `compare` and `merge` share: the expectations to judge by, and where the report goes.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Expectations directory [default: cts/expectations in the checkout].
    #[arg(long, value_name = "DIR")]
    pub expectations: Option<PathBuf>,

    /// Write the report here instead of to standard output.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(s),
        _ => Err(format!("`{text}` is not a positive number of seconds")),
    }
}
