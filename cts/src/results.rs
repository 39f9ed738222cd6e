//! deqp-runner's `results.csv`: one `case,status,duration` line per case.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

/// What dEQP itself said about a case, as deqp-runner names it. deqp-runner folds dEQP's
/// `NotSupported` into `Skip`, and `QualityWarning`, `CompatibilityWarning` and `Waiver` into `Warn`;
/// `ResourceError` and `InternalError` become `Fail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
    Warn,
    Crash,
    Timeout,
}

impl Outcome {
    fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "Pass" => Outcome::Pass,
            "Fail" => Outcome::Fail,
            "Skip" => Outcome::Skip,
            "Warn" => Outcome::Warn,
            "Crash" => Outcome::Crash,
            "Timeout" => Outcome::Timeout,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "Pass",
            Outcome::Fail => "Fail",
            Outcome::Skip => "Skip",
            Outcome::Warn => "Warn",
            Outcome::Crash => "Crash",
            Outcome::Timeout => "Timeout",
        }
    }
}

/// A status in `results.csv`: dEQP's outcome, or one of deqp-runner's own verdicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Outcome(Outcome),
    /// Failed, then gave a different result when deqp-runner ran it again.
    Flake,
    /// Failed, and matched a `--flakes` pattern.
    KnownFlake,
    /// In the caselist but dEQP never reported it (its process died before reaching it).
    Missing,
    /// Failed as the `--baseline` said it would.
    ExpectedFail,
    /// Did better than the `--baseline` said.
    UnexpectedImprovement(Outcome),
}

impl Status {
    pub const PASS: Status = Status::Outcome(Outcome::Pass);
    pub const FAIL: Status = Status::Outcome(Outcome::Fail);
    pub const SKIP: Status = Status::Outcome(Outcome::Skip);
    pub const WARN: Status = Status::Outcome(Outcome::Warn);
    pub const CRASH: Status = Status::Outcome(Outcome::Crash);
    pub const TIMEOUT: Status = Status::Outcome(Outcome::Timeout);

    pub fn parse(s: &str) -> Option<Status> {
        if let Some(inner) = s
            .strip_prefix("UnexpectedImprovement(")
            .and_then(|r| r.strip_suffix(')'))
        {
            return Outcome::parse(inner).map(Status::UnexpectedImprovement);
        }
        Some(match s {
            "Flake" => Status::Flake,
            "KnownFlake" => Status::KnownFlake,
            "Missing" => Status::Missing,
            "ExpectedFail" => Status::ExpectedFail,
            _ => Status::Outcome(Outcome::parse(s)?),
        })
    }

    pub fn is_pass(self) -> bool {
        self == Status::PASS
    }

    /// The report column this status is counted in.
    pub fn column(self) -> Column {
        match self {
            Status::Outcome(Outcome::Pass) => Column::Pass,
            Status::Outcome(Outcome::Fail) => Column::Fail,
            Status::Outcome(Outcome::Skip) => Column::Skip,
            Status::Outcome(Outcome::Warn) => Column::Warn,
            Status::Outcome(Outcome::Crash) => Column::Crash,
            Status::Outcome(Outcome::Timeout) => Column::Timeout,
            Status::Flake => Column::Flake,
            Status::KnownFlake => Column::KnownFlake,
            Status::Missing => Column::Missing,
            Status::ExpectedFail => Column::ExpectedFail,
            Status::UnexpectedImprovement(_) => Column::UnexpectedImprovement,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Status::Outcome(o) => f.write_str(o.name()),
            Status::Flake => f.write_str("Flake"),
            Status::KnownFlake => f.write_str("KnownFlake"),
            Status::Missing => f.write_str("Missing"),
            Status::ExpectedFail => f.write_str("ExpectedFail"),
            Status::UnexpectedImprovement(o) => write!(f, "UnexpectedImprovement({})", o.name()),
        }
    }
}

/// The columns of the per-group tables, in display order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Column {
    Pass,
    Fail,
    Skip,
    Warn,
    Crash,
    Timeout,
    Flake,
    KnownFlake,
    Missing,
    ExpectedFail,
    UnexpectedImprovement,
}

impl Column {
    pub const ALL: [Column; 11] = [
        Column::Pass,
        Column::Fail,
        Column::Skip,
        Column::Warn,
        Column::Crash,
        Column::Timeout,
        Column::Flake,
        Column::KnownFlake,
        Column::Missing,
        Column::ExpectedFail,
        Column::UnexpectedImprovement,
    ];

    /// Shown whether or not anything landed in them; the rest only when something did.
    pub fn always_shown(self) -> bool {
        self <= Column::Timeout
    }

    pub fn title(self) -> &'static str {
        match self {
            Column::Pass => "Pass",
            Column::Fail => "Fail",
            Column::Skip => "Skip",
            Column::Warn => "Warn",
            Column::Crash => "Crash",
            Column::Timeout => "Timeout",
            Column::Flake => "Flake",
            Column::KnownFlake => "KnownFlake",
            Column::Missing => "Missing",
            Column::ExpectedFail => "ExpectedFail",
            Column::UnexpectedImprovement => "UnexpectedImprovement",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct CaseResult {
    pub status: Status,
    /// Seconds, when the line carried one (deqp-runner's `failures.csv` does not).
    pub duration: Option<f64>,
}

/// One run's results, by case name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Results {
    pub cases: BTreeMap<String, CaseResult>,
}

impl Results {
    pub fn status(&self, case: &str) -> Option<Status> {
        self.cases.get(case).map(|r| r.status)
    }

    pub fn load(path: &Path) -> Result<Results> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Results::parse(&text, &path.display().to_string())
    }

    /// `source` names the file in error messages.
    pub fn parse(text: &str, source: &str) -> Result<Results> {
        let mut cases = BTreeMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            let lineno = index + 1;
            // deqp-runner itself accepts blank lines and `#` comments in these files.
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split(',').collect();
            if !(2..=3).contains(&fields.len()) {
                bail!("{source}:{lineno}: expected `case,status[,duration]`, got `{line}`");
            }
            let name = fields[0].trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                bail!("{source}:{lineno}: bad case name in `{line}`");
            }
            let status = Status::parse(fields[1].trim()).with_context(|| {
                format!(
                    "{source}:{lineno}: unknown status `{}` in `{line}`",
                    fields[1].trim()
                )
            })?;
            let duration = match fields.get(2) {
                Some(d) => Some(
                    d.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|d| d.is_finite() && *d >= 0.0)
                        .with_context(|| {
                            format!("{source}:{lineno}: bad duration `{}` in `{line}`", d.trim())
                        })?,
                ),
                None => None,
            };
            if cases
                .insert(name.to_string(), CaseResult { status, duration })
                .is_some()
            {
                bail!("{source}:{lineno}: second result for `{name}`");
            }
        }
        Ok(Results { cases })
    }

    /// Several runs' results as one, such as the shards of a sharded run. Each part comes with
    /// the name of its source, for the error when a case has a result in two of them.
    pub fn concat(parts: Vec<(String, Results)>) -> Result<Results> {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (source, results) in &parts {
            for case in results.cases.keys() {
                if let Some(first) = seen.insert(case, source) {
                    bail!("`{case}` has a result in both {first} and {source}");
                }
            }
        }
        let mut cases = BTreeMap::new();
        for (_, results) in parts {
            cases.extend(results.cases);
        }
        Ok(Results { cases })
    }

    /// Replaces the results of the cases `newer` (a later run of some of them) ran too, and
    /// leaves out the others: how many were replaced, how many left out.
    pub fn supersede(&mut self, newer: Results) -> (usize, usize) {
        let (mut replaced, mut left_out) = (0, 0);
        for (case, result) in newer.cases {
            match self.cases.get_mut(&case) {
                Some(old) => {
                    *old = result;
                    replaced += 1;
                }
                None => left_out += 1,
            }
        }
        (replaced, left_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_deqp_runner_lines() {
        let text = "dEQP-VK.api.smoke.create_sampler,Pass,0.25\n\
                    # a comment\n\
                    \n\
                    dEQP-VK.api.smoke.triangle,Fail,1.5\n\
                    dEQP-VK.memory.a,Skip,0\n\
                    dEQP-VK.memory.b,UnexpectedImprovement(Pass),0.1\n\
                    dEQP-VK.memory.c,Crash\n";
        let r = Results::parse(text, "results.csv").unwrap();
        assert_eq!(r.cases.len(), 5);
        assert_eq!(
            r.cases["dEQP-VK.api.smoke.create_sampler"],
            CaseResult {
                status: Status::PASS,
                duration: Some(0.25)
            }
        );
        assert_eq!(r.status("dEQP-VK.api.smoke.triangle"), Some(Status::FAIL));
        assert_eq!(r.status("dEQP-VK.memory.a"), Some(Status::SKIP));
        assert_eq!(
            r.status("dEQP-VK.memory.b"),
            Some(Status::UnexpectedImprovement(Outcome::Pass))
        );
        assert_eq!(r.cases["dEQP-VK.memory.c"].duration, None);
        assert_eq!(r.status("dEQP-VK.nope"), None);
    }

    #[test]
    fn every_status_name_round_trips() {
        for name in [
            "Pass",
            "Fail",
            "Skip",
            "Warn",
            "Crash",
            "Timeout",
            "Flake",
            "KnownFlake",
            "Missing",
            "ExpectedFail",
            "UnexpectedImprovement(Warn)",
        ] {
            let status = Status::parse(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(status.to_string(), name);
        }
        // dEQP's own names never reach results.csv: deqp-runner translates them.
        assert_eq!(Status::parse("NotSupported"), None);
        assert_eq!(Status::parse("UnexpectedImprovement(Bogus)"), None);
        assert_eq!(Status::parse("pass"), None);
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let cases = [
            ("a,Pass,1\nb\n", "results.csv:2", "expected `case,status"),
            ("a,Pass,1\nb,Pass,1,2\n", "results.csv:2", "expected"),
            (
                "a,Pass\n\nb,Bogus,1\n",
                "results.csv:3",
                "unknown status `Bogus`",
            ),
            ("a,Pass,soon\n", "results.csv:1", "bad duration `soon`"),
            ("a,Pass,-1\n", "results.csv:1", "bad duration"),
            ("a,Pass\na,Fail\n", "results.csv:2", "second result for `a`"),
            (",Pass\n", "results.csv:1", "bad case name"),
        ];
        for (text, place, what) in cases {
            let err = Results::parse(text, "results.csv").unwrap_err().to_string();
            assert!(err.contains(place), "{err:?} should name {place}");
            assert!(err.contains(what), "{err:?} should say {what}");
        }
    }

    #[test]
    fn concat_joins_parts_and_refuses_a_case_twice() {
        let part = |text: &str| Results::parse(text, "results.csv").unwrap();
        let joined = Results::concat(vec![
            (
                "shard1".into(),
                part("dEQP-VK.a,Pass,1\ndEQP-VK.c,Fail,2\n"),
            ),
            ("shard2".into(), part("dEQP-VK.b,Crash\n")),
            ("shard3".into(), Results::default()),
        ])
        .unwrap();
        assert_eq!(
            joined.cases.keys().collect::<Vec<_>>(),
            ["dEQP-VK.a", "dEQP-VK.b", "dEQP-VK.c"]
        );
        assert_eq!(joined.status("dEQP-VK.b"), Some(Status::CRASH));
        assert_eq!(joined.cases["dEQP-VK.c"].duration, Some(2.0));

        let err = Results::concat(vec![
            ("shard1".into(), part("dEQP-VK.a,Pass,1\n")),
            ("shard2".into(), part("dEQP-VK.b,Pass,1\n")),
            ("shard3".into(), part("dEQP-VK.a,Fail,1\n")),
        ])
        .unwrap_err()
        .to_string();
        assert_eq!(err, "`dEQP-VK.a` has a result in both shard1 and shard3");
    }

    #[test]
    fn columns_cover_every_status() {
        assert_eq!(Status::KnownFlake.column(), Column::KnownFlake);
        assert_eq!(
            Status::UnexpectedImprovement(Outcome::Fail).column(),
            Column::UnexpectedImprovement
        );
        assert!(Column::Timeout.always_shown());
        assert!(!Column::Flake.always_shown());
    }
}
