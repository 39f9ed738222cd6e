//! Caselists: which cases a suite runs, written as patterns and expanded against the full list of
//! cases that deqp-vk reports.
//!
//! A caselist line is an exact case or group name, or a glob (`*` for any run of characters, dots
//! included; `?` for one character), optionally followed by `fraction=N`: of the cases the line
//! matches, in sorted order, take the first and then every Nth. `#` starts a comment.

use anyhow::{bail, Context, Result};
use regex::Regex;
use std::collections::{BTreeSet, HashSet};
use std::path::Path;

#[derive(Debug, Clone)]
enum NamePattern {
    Exact(String),
    Glob {
        /// The literal text before the first wildcard, to narrow the search in the sorted list.
        prefix: String,
        regex: Regex,
    },
}

#[derive(Debug, Clone)]
struct Rule {
    line: usize,
    text: String,
    pattern: NamePattern,
    fraction: usize,
}

#[derive(Debug, Clone)]
pub struct CaselistSpec {
    source: String,
    rules: Vec<Rule>,
}

impl CaselistSpec {
    pub fn load(path: &Path) -> Result<CaselistSpec> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        CaselistSpec::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, source: &str) -> Result<CaselistSpec> {
        let mut rules = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let body = raw.split('#').next().unwrap_or("").trim();
            if body.is_empty() {
                continue;
            }
            let mut words = body.split_whitespace();
            let name = words.next().unwrap_or_default();
            let mut fraction = 1;
            for word in words {
                let Some(value) = word.strip_prefix("fraction=") else {
                    bail!("{source}:{line}: unknown word `{word}` (expected `fraction=N`)");
                };
                fraction = match value.parse::<usize>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        bail!("{source}:{line}: `{word}`: the fraction must be a whole number ≥ 1")
                    }
                };
            }
            let pattern = match name.find(['*', '?']) {
                None => NamePattern::Exact(name.to_string()),
                Some(first) => NamePattern::Glob {
                    prefix: name[..first].to_string(),
                    regex: glob_regex(name),
                },
            };
            rules.push(Rule {
                line,
                text: body.to_string(),
                pattern,
                fraction,
            });
        }
        if rules.is_empty() {
            bail!("{source}: the caselist names no cases");
        }
        Ok(CaselistSpec {
            source: source.to_string(),
            rules,
        })
    }
}

fn glob_regex(glob: &str) -> Regex {
    let mut re = String::from("^");
    for c in glob.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).expect("an escaped glob is a valid regex")
}

/// Every case deqp-vk knows, sorted, and its groups.
#[derive(Debug, Clone, Default)]
pub struct CaseUniverse {
    tests: Vec<String>,
    groups: HashSet<String>,
}

impl CaseUniverse {
    /// Reads what `deqp-vk --deqp-runmode=txt-caselist` writes (`TEST: name` and `GROUP: name`
    /// lines), or a plain list of case names.
    pub fn parse(text: &str, source: &str) -> Result<CaseUniverse> {
        let mut tests = Vec::new();
        let mut groups = HashSet::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let (kind, name) = match line.split_once(": ") {
                Some((kind, name)) => (Some(kind), name.trim()),
                None => (None, line),
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                bail!("{source}:{}: unexpected line `{line}`", index + 1);
            }
            match kind {
                None | Some("TEST") => tests.push(name.to_string()),
                Some("GROUP") => {
                    groups.insert(name.to_string());
                }
                Some(other) => bail!("{source}:{}: unknown line kind `{other}`", index + 1),
            }
        }
        tests.sort_unstable();
        tests.dedup();
        Ok(CaseUniverse { tests, groups })
    }

    pub fn len(&self) -> usize {
        self.tests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }

    /// The sorted tests whose names start with `prefix`.
    fn with_prefix(&self, prefix: &str) -> &[String] {
        let start = self.tests.partition_point(|t| t.as_str() < prefix);
        let len = self.tests[start..].partition_point(|t| t.starts_with(prefix));
        &self.tests[start..start + len]
    }

    fn find(&self, name: &str) -> Option<&String> {
        let i = self.tests.binary_search_by(|t| t.as_str().cmp(name)).ok()?;
        Some(&self.tests[i])
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSummary {
    pub line: usize,
    pub text: String,
    pub matched: usize,
    pub selected: usize,
}

#[derive(Debug, Clone)]
pub struct Expansion {
    /// Sorted, each case once.
    pub cases: Vec<String>,
    pub rules: Vec<RuleSummary>,
}

impl Expansion {
    /// The lines of a caselist that matched nothing (a glob for tests this build lacks).
    pub fn empty_rules(&self) -> impl Iterator<Item = &RuleSummary> {
        self.rules.iter().filter(|r| r.matched == 0)
    }

    pub fn to_file(&self) -> String {
        let mut out = String::with_capacity(self.cases.iter().map(|c| c.len() + 1).sum());
        for case in &self.cases {
            out.push_str(case);
            out.push('\n');
        }
        out
    }
}

impl CaselistSpec {
    /// An exact name that is neither a case nor a group is an error: it is a typo or a case this
    /// deqp-vk does not have, and a silently shorter run would hide either.
    pub fn expand(&self, universe: &CaseUniverse) -> Result<Expansion> {
        let mut chosen = BTreeSet::new();
        let mut summaries = Vec::new();
        let mut unknown = Vec::new();
        for rule in &self.rules {
            let matched: Vec<&String> = match &rule.pattern {
                NamePattern::Exact(name) => {
                    if let Some(test) = universe.find(name) {
                        vec![test]
                    } else if universe.groups.contains(name) {
                        universe.with_prefix(&format!("{name}.")).iter().collect()
                    } else {
                        unknown.push(format!("line {}: {name}", rule.line));
                        Vec::new()
                    }
                }
                NamePattern::Glob { prefix, regex } => universe
                    .with_prefix(prefix)
                    .iter()
                    .filter(|t| regex.is_match(t))
                    .collect(),
            };
            let mut selected = 0;
            for case in matched.iter().step_by(rule.fraction) {
                selected += 1;
                chosen.insert(case.as_str());
            }
            summaries.push(RuleSummary {
                line: rule.line,
                text: rule.text.clone(),
                matched: matched.len(),
                selected,
            });
        }
        if !unknown.is_empty() {
            bail!(
                "{}: not in deqp-vk's case list:\n  {}",
                self.source,
                unknown.join("\n  ")
            );
        }
        Ok(Expansion {
            cases: chosen.into_iter().map(str::to_string).collect(),
            rules: summaries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn universe() -> CaseUniverse {
        let mut text = String::from(
            "GROUP: dEQP-VK\nGROUP: dEQP-VK.api\nGROUP: dEQP-VK.api.smoke\n\
             TEST: dEQP-VK.api.smoke.triangle\nTEST: dEQP-VK.api.smoke.create_sampler\n\
             TEST: dEQP-VK.api.smoke.create_shader\nGROUP: dEQP-VK.api.info\n\
             TEST: dEQP-VK.api.info.instance.physical_devices\n\
             GROUP: dEQP-VK.ssbo\nGROUP: dEQP-VK.ssbo.layout\n",
        );
        for i in 0..10 {
            text.push_str(&format!("TEST: dEQP-VK.ssbo.layout.case_{i}\n"));
        }
        // A bare name line, as in a mustpass file.
        text.push_str("dEQP-VK.ssbo.layoutx.other\n");
        CaseUniverse::parse(&text, "dEQP-VK-cases.txt").unwrap()
    }

    fn expand(spec: &str) -> Result<Expansion> {
        CaselistSpec::parse(spec, "test.txt")?.expand(&universe())
    }

    #[test]
    fn parses_deqp_txt_caselist() {
        let u = universe();
        assert_eq!(u.len(), 15);
        assert!(u.groups.contains("dEQP-VK.api.smoke"));
        assert!(u.find("dEQP-VK.api.smoke").is_none());
        assert!(u.find("dEQP-VK.ssbo.layoutx.other").is_some());
        let err = CaseUniverse::parse("TEST: a\nFOO: b\n", "x").unwrap_err();
        assert!(err.to_string().contains("x:2: unknown line kind `FOO`"));
    }

    #[test]
    fn globs_match_whole_names_across_dots() {
        let e = expand("dEQP-VK.api.*\n").unwrap();
        assert_eq!(e.cases.len(), 4);
        let e = expand("dEQP-VK.api.smoke.create_s*\n").unwrap();
        assert_eq!(
            e.cases,
            [
                "dEQP-VK.api.smoke.create_sampler",
                "dEQP-VK.api.smoke.create_shader"
            ]
        );
        let e = expand("dEQP-VK.ssbo.layout.case_?\n").unwrap();
        assert_eq!(e.cases.len(), 10);
        // A glob's dots are literal: `layout.*` does not take in `layoutx`.
        let e = expand("dEQP-VK.ssbo.layout.*\n").unwrap();
        assert!(!e.cases.iter().any(|c| c.contains("layoutx")));
        let e = expand("*.triangle\n").unwrap();
        assert_eq!(e.cases, ["dEQP-VK.api.smoke.triangle"]);
    }

    #[test]
    fn fractions_take_every_nth_in_sorted_order() {
        let e = expand("dEQP-VK.ssbo.layout.* fraction=3\n").unwrap();
        assert_eq!(
            e.cases,
            [
                "dEQP-VK.ssbo.layout.case_0",
                "dEQP-VK.ssbo.layout.case_3",
                "dEQP-VK.ssbo.layout.case_6",
                "dEQP-VK.ssbo.layout.case_9"
            ]
        );
        assert_eq!(
            e.rules,
            [RuleSummary {
                line: 1,
                text: "dEQP-VK.ssbo.layout.* fraction=3".into(),
                matched: 10,
                selected: 4
            }]
        );
        for bad in ["x fraction=0", "x fraction=two", "x every=2"] {
            let err = expand(bad).unwrap_err().to_string();
            assert!(err.starts_with("test.txt:1:"), "{err}");
        }
    }

    #[test]
    fn exact_names_groups_comments_and_overlaps() {
        let spec = "# smoke\n\
                    dEQP-VK.api.smoke.triangle   # the one that draws\n\
                    \n\
                    dEQP-VK.api.info\n\
                    dEQP-VK.api.*\n";
        let e = expand(spec).unwrap();
        // The overlap between lines is counted once.
        assert_eq!(e.cases.len(), 4);
        assert_eq!(e.rules[0].selected, 1);
        assert_eq!(e.rules[1].matched, 1, "a group name takes in its cases");
        assert_eq!(e.rules[2].line, 5);
        let mut sorted = e.cases.clone();
        sorted.sort();
        assert_eq!(e.cases, sorted);
        assert_eq!(e.to_file().lines().count(), 4);
    }

    #[test]
    fn unknown_exact_names_are_reported() {
        let err = expand("dEQP-VK.api.smoke.triangle\ndEQP-VK.api.smoke.nope\ndEQP-VK.gone\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test.txt: not in deqp-vk's case list"),
            "{err}"
        );
        assert!(err.contains("line 2: dEQP-VK.api.smoke.nope"), "{err}");
        assert!(err.contains("line 3: dEQP-VK.gone"), "{err}");
    }

    #[test]
    fn globs_matching_nothing_are_noted_not_fatal() {
        let e = expand("dEQP-VK.api.smoke.*\ndEQP-VK.wsi.headless.*\n").unwrap();
        let empty: Vec<_> = e.empty_rules().map(|r| r.line).collect();
        assert_eq!(empty, [2]);
        assert!(CaselistSpec::parse("# nothing\n", "empty.txt").is_err());
    }
}
