//! Expectations: lists of case names or patterns, each entry with the reason it is there.
//!
//! A line is an exact case name unless it holds a regex metacharacter other than `.`
//! (the rule deqp-runner uses for its own lists), in which case it is a regex that must match the
//! whole name. `#` starts a comment line. Every entry needs a non-empty comment above it in its
//! block (a blank line ends a block); consecutive entries under one comment share it.

use anyhow::{bail, Context, Result};
use regex::{Regex, RegexSet};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub const FAILS_FILE: &str = "airlock-fails.txt";
pub const SKIPS_FILE: &str = "airlock-skips.txt";
pub const FLAKES_FILE: &str = "airlock-flakes.txt";

const REGEX_CHARS: &[char] = &[
    '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '^', '$', '\\',
];

#[derive(Clone, Debug)]
pub enum Pattern {
    Exact(String),
    Regex(String),
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub pattern: Pattern,
    /// The line as written.
    pub text: String,
    pub reason: String,
    pub source: String,
    pub line: usize,
}

impl Entry {
    /// Anchored regex text for deqp-runner, whose own matching is unanchored.
    fn runner_regex(&self) -> String {
        match &self.pattern {
            Pattern::Exact(name) => format!("^{}$", regex::escape(name)),
            Pattern::Regex(re) => format!("^(?:{re})$"),
        }
    }
}

/// Where an entry came from, for the report.
impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.line)
    }
}

#[derive(Clone, Debug, Default)]
pub struct PatternList {
    entries: Vec<Entry>,
    exact: HashMap<String, usize>,
    /// Entry indices of the regexes, in the order of `set`.
    regex_entries: Vec<usize>,
    set: Option<RegexSet>,
}

impl PatternList {
    /// `source` names the file in error messages and in the report.
    pub fn parse(text: &str, source: &str) -> Result<PatternList> {
        let mut list = PatternList::default();
        let mut reason: Option<String> = None;
        let mut last_was_entry = false;
        for (index, raw) in text.lines().enumerate() {
            let lineno = index + 1;
            let line = raw.trim();
            if line.is_empty() {
                reason = None;
                last_was_entry = false;
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let comment = comment.trim();
                if last_was_entry {
                    // A comment after entries starts the reason for the entries below it.
                    reason = None;
                }
                if !comment.is_empty() {
                    reason = Some(match reason.take() {
                        Some(r) => format!("{r} {comment}"),
                        None => comment.to_string(),
                    });
                }
                last_was_entry = false;
                continue;
            }
            let Some(why) = reason.clone() else {
                bail!(
                    "{source}:{lineno}: `{line}` has no reason: put a `# why` comment on the line above it"
                );
            };
            if line.contains(char::is_whitespace) {
                bail!("{source}:{lineno}: `{line}`: one case name or pattern per line, without spaces");
            }
            if let Some((_, after)) = line.rsplit_once(',') {
                if crate::results::Status::parse(after).is_some() {
                    bail!(
                        "{source}:{lineno}: `{line}`: write the case name or pattern alone, without `,{after}`"
                    );
                }
            }
            let pattern = if line.contains(REGEX_CHARS) {
                Regex::new(&format!("^(?:{line})$"))
                    .with_context(|| format!("{source}:{lineno}: invalid regex `{line}`"))?;
                Pattern::Regex(line.to_string())
            } else {
                Pattern::Exact(line.to_string())
            };
            list.entries.push(Entry {
                pattern,
                text: line.to_string(),
                reason: why,
                source: source.to_string(),
                line: lineno,
            });
            last_was_entry = true;
        }
        list.index()?;
        Ok(list)
    }

    fn index(&mut self) -> Result<()> {
        let mut regexes = Vec::new();
        for (i, entry) in self.entries.iter().enumerate() {
            match &entry.pattern {
                Pattern::Exact(name) => {
                    self.exact.entry(name.clone()).or_insert(i);
                }
                Pattern::Regex(re) => {
                    self.regex_entries.push(i);
                    regexes.push(format!("^(?:{re})$"));
                }
            }
        }
        if !regexes.is_empty() {
            self.set = Some(RegexSet::new(&regexes).context("compiling expectation patterns")?);
        }
        Ok(())
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first entry (in file order) matching the whole case name.
    pub fn matching(&self, case: &str) -> Option<&Entry> {
        let exact = self.exact.get(case).copied();
        let regex = self.set.as_ref().and_then(|set| {
            set.matches(case)
                .iter()
                .next()
                .map(|k| self.regex_entries[k])
        });
        let first = match (exact, regex) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(&self.entries[first])
    }

    /// The list as a deqp-runner `--skips`/`--flakes` file.
    pub fn to_runner_file(&self) -> String {
        let mut out = String::from("# Generated by airlock-cts; anchored to match whole names.\n");
        for entry in &self.entries {
            out.push_str(&format!("# {entry}: {}\n", entry.reason));
            out.push_str(&entry.runner_regex());
            out.push('\n');
        }
        out
    }
}

/// The three lists of an expectations directory; a file that is not there is an empty list.
#[derive(Clone, Debug, Default)]
pub struct Expectations {
    pub dir: Option<PathBuf>,
    pub fails: PatternList,
    pub skips: PatternList,
    pub flakes: PatternList,
}

impl Expectations {
    pub fn load(dir: &Path) -> Result<Expectations> {
        if !dir.is_dir() {
            bail!("expectations directory {} does not exist", dir.display());
        }
        let read = |name: &str| -> Result<PatternList> {
            let path = dir.join(name);
            if path.exists() {
                // Named by file alone: that is how the report cites entries.
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                PatternList::parse(&text, name)
                    .with_context(|| format!("in expectations directory {}", dir.display()))
            } else {
                Ok(PatternList::default())
            }
        };
        Ok(Expectations {
            dir: Some(std::path::absolute(dir)?),
            fails: read(FAILS_FILE)?,
            skips: read(SKIPS_FILE)?,
            flakes: read(FLAKES_FILE)?,
        })
    }

    /// Why a case that passes natively may do otherwise through Airlock, if it may.
    pub fn allowing(&self, case: &str) -> Option<&Entry> {
        self.fails
            .matching(case)
            .or_else(|| self.flakes.matching(case))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# Airlock's expected failures.

# Sparse binding is not carried yet.
dEQP-VK.sparse_resources.buffer.*
dEQP-VK.api.info.format_properties.r8_unorm

# Host pointer import needs memory sharing
# that the server does not do.
dEQP-VK.api.external.memory.host_pointer
# Timeline waits race with the server's worker.
dEQP-VK.synchronization.timeline_semaphore.(wait|signal)_.*
";

    #[test]
    fn loads_exact_names_and_regexes_with_reasons() {
        let list = PatternList::parse(SAMPLE, "fails.txt").unwrap();
        let e = list.entries();
        assert_eq!(e.len(), 4);
        assert!(matches!(e[0].pattern, Pattern::Regex(_)));
        assert!(matches!(e[1].pattern, Pattern::Exact(_)));
        assert_eq!(e[0].reason, "Sparse binding is not carried yet.");
        assert_eq!(e[1].reason, "Sparse binding is not carried yet.");
        assert_eq!(e[1].line, 5);
        assert_eq!(
            e[2].reason,
            "Host pointer import needs memory sharing that the server does not do."
        );
        assert_eq!(e[3].reason, "Timeline waits race with the server's worker.");
        assert_eq!(e[3].to_string(), "fails.txt:11");
    }

    #[test]
    fn matches_whole_names_only() {
        let list = PatternList::parse(SAMPLE, "fails.txt").unwrap();
        let hit = |c: &str| list.matching(c).map(|e| e.line);
        assert_eq!(
            hit("dEQP-VK.sparse_resources.buffer.ssbo.sparse_binding"),
            Some(4)
        );
        assert_eq!(hit("dEQP-VK.api.info.format_properties.r8_unorm"), Some(5));
        // An exact name is not a prefix, and its dots are not wildcards.
        assert_eq!(
            hit("dEQP-VK.api.info.format_properties.r8_unorm_extra"),
            None
        );
        assert_eq!(hit("dEQP-VK.api.info.format_properties.r8Xunorm"), None);
        assert_eq!(
            hit("dEQP-VK.synchronization.timeline_semaphore.wait_one"),
            Some(11)
        );
        assert_eq!(
            hit("dEQP-VK.synchronization.timeline_semaphore.host_wait"),
            None
        );
        // A regex must match the whole name, not a part of it.
        assert_eq!(hit("prefix.dEQP-VK.sparse_resources.buffer.x"), None);
    }

    #[test]
    fn first_entry_in_file_order_wins() {
        let text = "# broad\ndEQP-VK.api.*\n# narrow\ndEQP-VK.api.smoke.triangle\n";
        let list = PatternList::parse(text, "f").unwrap();
        assert_eq!(list.matching("dEQP-VK.api.smoke.triangle").unwrap().line, 2);
        let text = "# narrow\ndEQP-VK.api.smoke.triangle\n# broad\ndEQP-VK.api.*\n";
        let list = PatternList::parse(text, "f").unwrap();
        assert_eq!(list.matching("dEQP-VK.api.smoke.triangle").unwrap().line, 2);
    }

    #[test]
    fn entry_without_reason_is_rejected() {
        for (text, line) in [
            ("dEQP-VK.api.smoke.triangle\n", 1),
            // A blank line ends the comment's block.
            ("# reason\n\ndEQP-VK.api.smoke.triangle\n", 3),
            // An empty comment is no reason.
            ("#\ndEQP-VK.api.smoke.triangle\n", 2),
            ("# ok\ndEQP-VK.a\n\ndEQP-VK.b\n", 4),
        ] {
            let err = PatternList::parse(text, "fails.txt")
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("fails.txt:{line}:")), "{err}");
            assert!(err.contains("has no reason"), "{err}");
        }
    }

    #[test]
    fn invalid_regex_is_rejected_with_its_line() {
        let err =
            PatternList::parse("# why\n# more\ndEQP-VK.api.(smoke\n", "skips.txt").unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("skips.txt:3: invalid regex `dEQP-VK.api.(smoke`"),
            "{text}"
        );
    }

    #[test]
    fn baseline_style_lines_are_rejected() {
        let err = PatternList::parse("# why\ndEQP-VK.api.smoke.triangle,Fail\n", "f")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("f:2:") && err.contains("without `,Fail`"),
            "{err}"
        );
        let err = PatternList::parse("# why\ndEQP-VK.a dEQP-VK.b\n", "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("f:2:"), "{err}");
    }

    #[test]
    fn runner_file_is_anchored() {
        let list = PatternList::parse(SAMPLE, "fails.txt").unwrap();
        let file = list.to_runner_file();
        let lines: Vec<&str> = file.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                r"^(?:dEQP-VK.sparse_resources.buffer.*)$",
                r"^dEQP\-VK\.api\.info\.format_properties\.r8_unorm$",
                r"^dEQP\-VK\.api\.external\.memory\.host_pointer$",
                r"^(?:dEQP-VK.synchronization.timeline_semaphore.(wait|signal)_.*)$",
            ]
        );
        for line in lines {
            Regex::new(line).unwrap();
        }
    }

    #[test]
    fn directory_with_missing_files_is_empty_lists() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FLAKES_FILE),
            "# flaky under load\ndEQP-VK.a.b\n",
        )
        .unwrap();
        let e = Expectations::load(dir.path()).unwrap();
        assert!(e.fails.is_empty() && e.skips.is_empty());
        assert_eq!(e.allowing("dEQP-VK.a.b").unwrap().line, 2);
        assert!(e.allowing("dEQP-VK.a.c").is_none());
        assert!(Expectations::load(&dir.path().join("nope")).is_err());
    }
}
