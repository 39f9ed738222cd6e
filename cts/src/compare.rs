//! Native against Airlock: counts per group, and the cases whose verdict differs.

use crate::expectations::{Entry, Expectations};
use crate::results::{Column, Results, Status};
use std::collections::{BTreeMap, BTreeSet};

/// Cases per report column.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts([u64; Column::ALL.len()]);

impl Counts {
    pub fn add(&mut self, status: Status) {
        self.0[status.column() as usize] += 1;
    }

    pub fn get(&self, column: Column) -> u64 {
        self.0[column as usize]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    fn merge(&mut self, other: &Counts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

/// The top-level group of a case: `dEQP-VK.api.smoke.triangle` is in `dEQP-VK.api`.
pub fn group_of(case: &str) -> &str {
    match case.match_indices('.').nth(1) {
        Some((i, _)) => &case[..i],
        None => case,
    }
}

pub fn counts_by_group(results: &Results) -> BTreeMap<String, Counts> {
    let mut groups: BTreeMap<String, Counts> = BTreeMap::new();
    for (case, result) in &results.cases {
        groups
            .entry(group_of(case).to_string())
            .or_default()
            .add(result.status);
    }
    groups
}

pub fn total(groups: &BTreeMap<String, Counts>) -> Counts {
    let mut all = Counts::default();
    for counts in groups.values() {
        all.merge(counts);
    }
    all
}

/// The `n` cases both runs timed whose time grew most through Airlock, most first.
fn slowest(native: &Results, airlock: &Results, n: usize) -> Vec<Slower> {
    let mut grown: Vec<Slower> = airlock
        .cases
        .iter()
        .filter_map(|(case, a)| {
            let (n, a) = (native.cases.get(case)?.duration?, a.duration?);
            (a > n).then(|| Slower {
                case: case.clone(),
                native: n,
                airlock: a,
            })
        })
        .collect();
    grown.sort_by(|x, y| y.added().total_cmp(&x.added()).then(x.case.cmp(&y.case)));
    grown.truncate(n);
    grown
}

/// Passes natively, does anything else through Airlock (or is absent from its results).
#[derive(Clone, Debug)]
pub struct Regression {
    pub case: String,
    pub airlock: Option<Status>,
    /// The fails or flakes entry that allows it.
    pub expected_by: Option<Entry>,
}

/// Does anything else natively (or is absent there), passes through Airlock.
#[derive(Clone, Debug)]
pub struct Improvement {
    pub case: String,
    pub native: Option<Status>,
}

/// An expected failure that passes through Airlock: its entry can go.
#[derive(Clone, Debug)]
pub struct Fixed {
    pub case: String,
    pub entry: Entry,
}

/// A case whose time grew through Airlock, in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Slower {
    pub case: String,
    pub native: f64,
    pub airlock: f64,
}

impl Slower {
    pub fn added(&self) -> f64 {
        self.airlock - self.native
    }
}

/// How many of the cases that grew most the comparison keeps.
pub const SLOWEST: usize = 15;

#[derive(Clone, Debug)]
pub struct Comparison {
    pub native: BTreeMap<String, Counts>,
    pub airlock: BTreeMap<String, Counts>,
    pub regressions: Vec<Regression>,
    pub improvements: Vec<Improvement>,
    pub fixed: Vec<Fixed>,
    /// The [`SLOWEST`] cases whose time grew most, most first: where a round trip too many
    /// hides (the wall-time ratio alone spreads it over every case).
    pub slowest: Vec<Slower>,
}

impl Comparison {
    pub fn new(native: &Results, airlock: &Results, expectations: &Expectations) -> Comparison {
        let names: BTreeSet<&String> = native.cases.keys().chain(airlock.cases.keys()).collect();
        let mut regressions = Vec::new();
        let mut improvements = Vec::new();
        let mut fixed = Vec::new();
        for case in names {
            let n = native.status(case);
            let a = airlock.status(case);
            let n_pass = n.is_some_and(Status::is_pass);
            let a_pass = a.is_some_and(Status::is_pass);
            if n_pass && !a_pass {
                regressions.push(Regression {
                    case: case.clone(),
                    airlock: a,
                    expected_by: expectations.allowing(case).cloned(),
                });
            } else if a_pass && !n_pass {
                improvements.push(Improvement {
                    case: case.clone(),
                    native: n,
                });
            }
            if a_pass {
                if let Some(entry) = expectations.fails.matching(case) {
                    fixed.push(Fixed {
                        case: case.clone(),
                        entry: entry.clone(),
                    });
                }
            }
        }
        Comparison {
            native: counts_by_group(native),
            airlock: counts_by_group(airlock),
            regressions,
            improvements,
            fixed,
            slowest: slowest(native, airlock, SLOWEST),
        }
    }

    pub fn unexpected_regressions(&self) -> impl Iterator<Item = &Regression> {
        self.regressions.iter().filter(|r| r.expected_by.is_none())
    }

    /// The process exit status: 1 when a regression is not in the expectations, else 0.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.unexpected_regressions().next().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expectations::PatternList;
    use crate::results::Outcome;

    fn results(text: &str) -> Results {
        Results::parse(text, "results.csv").unwrap()
    }

    const NATIVE: &str = "\
dEQP-VK.api.smoke.triangle,Pass,0.1
dEQP-VK.api.smoke.create_sampler,Pass,0.1
dEQP-VK.api.info.a,Pass,0.1
dEQP-VK.memory.mapping.a,Fail,0.1
dEQP-VK.memory.mapping.b,Skip,0
dEQP-VK.memory.mapping.c,Pass,0.1
dEQP-VK.memory.mapping.d,Pass,0.1
dEQP-VK.wsi.x,Crash,1
";
    const AIRLOCK: &str = "\
dEQP-VK.api.smoke.triangle,Fail,0.1
dEQP-VK.api.smoke.create_sampler,Pass,0.1
dEQP-VK.api.info.a,Timeout,60
dEQP-VK.memory.mapping.a,Pass,0.1
dEQP-VK.memory.mapping.b,Skip,0
dEQP-VK.memory.mapping.c,Flake,0.1
dEQP-VK.wsi.x,Pass,1
";

    fn fails(text: &str) -> Expectations {
        Expectations {
            fails: PatternList::parse(text, "airlock-fails.txt").unwrap(),
            ..Expectations::default()
        }
    }

    #[test]
    fn groups_are_the_first_two_name_parts() {
        assert_eq!(group_of("dEQP-VK.api.smoke.triangle"), "dEQP-VK.api");
        assert_eq!(group_of("dEQP-VK.api"), "dEQP-VK.api");
        assert_eq!(group_of("dEQP-VK"), "dEQP-VK");
    }

    #[test]
    fn counts_per_group() {
        let groups = counts_by_group(&results(NATIVE));
        assert_eq!(
            groups.keys().collect::<Vec<_>>(),
            ["dEQP-VK.api", "dEQP-VK.memory", "dEQP-VK.wsi"]
        );
        let mem = &groups["dEQP-VK.memory"];
        assert_eq!(mem.get(Column::Pass), 2);
        assert_eq!(mem.get(Column::Fail), 1);
        assert_eq!(mem.get(Column::Skip), 1);
        assert_eq!(mem.total(), 4);
        assert_eq!(groups["dEQP-VK.wsi"].get(Column::Crash), 1);
        let all = total(&groups);
        assert_eq!(all.total(), 8);
        assert_eq!(all.get(Column::Pass), 5);
        let mut c = Counts::default();
        c.add(Status::UnexpectedImprovement(Outcome::Pass));
        c.add(Status::KnownFlake);
        assert_eq!(c.get(Column::UnexpectedImprovement), 1);
        assert_eq!(c.get(Column::KnownFlake), 1);
    }

    #[test]
    fn regressions_and_improvements() {
        let c = Comparison::new(
            &results(NATIVE),
            &results(AIRLOCK),
            &Expectations::default(),
        );
        let regressions: Vec<_> = c
            .regressions
            .iter()
            .map(|r| (r.case.as_str(), r.airlock))
            .collect();
        assert_eq!(
            regressions,
            [
                ("dEQP-VK.api.info.a", Some(Status::TIMEOUT)),
                ("dEQP-VK.api.smoke.triangle", Some(Status::FAIL)),
                ("dEQP-VK.memory.mapping.c", Some(Status::Flake)),
                // Missing from Airlock's results altogether.
                ("dEQP-VK.memory.mapping.d", None),
            ]
        );
        let improvements: Vec<_> = c
            .improvements
            .iter()
            .map(|i| (i.case.as_str(), i.native))
            .collect();
        assert_eq!(
            improvements,
            [
                ("dEQP-VK.memory.mapping.a", Some(Status::FAIL)),
                ("dEQP-VK.wsi.x", Some(Status::CRASH)),
            ]
        );
        assert!(c.fixed.is_empty());
        assert_eq!(c.unexpected_regressions().count(), 4);
        assert_eq!(c.exit_code(), 1);
    }

    #[test]
    fn expectations_allow_regressions_and_notice_fixes() {
        let e = fails(
            "# Timeouts under Airlock's round trips\ndEQP-VK.api.info.*\n\
             # Flaky draw\ndEQP-VK.api.smoke.triangle\n\
             # Mapping was broken\ndEQP-VK.memory.mapping.[ab]\n",
        );
        let e = Expectations {
            flakes: PatternList::parse(
                "# Races\ndEQP-VK.memory.mapping.[cd]\n",
                "airlock-flakes.txt",
            )
            .unwrap(),
            ..e
        };
        let c = Comparison::new(&results(NATIVE), &results(AIRLOCK), &e);
        assert_eq!(c.regressions.len(), 4);
        let by: Vec<_> = c
            .regressions
            .iter()
            .map(|r| r.expected_by.as_ref().map(|e| e.to_string()))
            .collect();
        assert_eq!(
            by,
            [
                Some("airlock-fails.txt:2".to_string()),
                Some("airlock-fails.txt:4".to_string()),
                Some("airlock-flakes.txt:2".to_string()),
                Some("airlock-flakes.txt:2".to_string()),
            ]
        );
        assert_eq!(c.exit_code(), 0);
        // memory.mapping.a passes through Airlock now; .b is matched but still skips.
        let fixed: Vec<_> = c.fixed.iter().map(|f| f.case.as_str()).collect();
        assert_eq!(fixed, ["dEQP-VK.memory.mapping.a"]);
        assert_eq!(c.fixed[0].entry.reason, "Mapping was broken");
    }

    #[test]
    fn the_slowest_are_the_cases_whose_time_grew_most() {
        let native = results("a,Pass,1\nb,Pass,2\nc,Pass,0.5\nd,Pass\ne,Pass,3\nf,Pass,1\n");
        let airlock = results("a,Pass,1.5\nb,Pass,1\nc,Fail,4\nd,Pass,9\ne,Pass,3.2\nf,Pass,1.5\n");
        let got = slowest(&native, &airlock, 3);
        let got: Vec<_> = got.iter().map(|s| (s.case.as_str(), s.added())).collect();
        // c grew most; a and f grew alike (by name); b sped up; d has no native time.
        assert_eq!(got, [("c", 3.5), ("a", 0.5), ("f", 0.5)]);
        assert!(slowest(&native, &native, 3).is_empty());
    }

    #[test]
    fn one_unlisted_regression_fails_the_run() {
        let e = fails("# all but one\ndEQP-VK.api.info.a\ndEQP-VK.memory.mapping.[cd]\n");
        let c = Comparison::new(&results(NATIVE), &results(AIRLOCK), &e);
        let unexpected: Vec<_> = c.unexpected_regressions().map(|r| &r.case).collect();
        assert_eq!(unexpected, ["dEQP-VK.api.smoke.triangle"]);
        assert_eq!(c.exit_code(), 1);
        let same = results(NATIVE);
        assert_eq!(
            Comparison::new(&same, &same, &Expectations::default()).exit_code(),
            0
        );
    }
}
