//! The markdown report.

use crate::compare::{total, Comparison, Counts};
use crate::results::{Column, Status};
use std::fmt::Write;

/// What the report says about where its numbers come from.
#[derive(Clone, Debug, Default)]
pub struct ReportInfo {
    /// The suite's name, e.g. `quick`.
    pub suite: String,
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    /// Header rows, in order: what, value.
    pub details: Vec<(String, String)>,
    pub native_seconds: Option<f64>,
    pub airlock_seconds: Option<f64>,
}

pub fn format_duration(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    let s = seconds.round() as u64;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else {
        format!("{m}m {s:02}s")
    }
}

/// Airlock's wall time over native's, when both are known and native's is not zero.
pub fn ratio(info: &ReportInfo) -> Option<f64> {
    match (info.native_seconds, info.airlock_seconds) {
        (Some(n), Some(a)) if n > 0.0 => Some(a / n),
        _ => None,
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn status_text(status: Option<Status>) -> String {
    status.map_or_else(|| "(no result)".to_string(), |s| s.to_string())
}

/// The columns worth a place: the common ones always, the rest when either side has a case there.
fn columns(native: &Counts, airlock: &Counts) -> Vec<Column> {
    Column::ALL
        .into_iter()
        .filter(|&c| c.always_shown() || native.get(c) + airlock.get(c) > 0)
        .collect()
}

pub fn render(info: &ReportInfo, c: &Comparison) -> String {
    let mut out = String::new();
    let native_all = total(&c.native);
    let airlock_all = total(&c.airlock);
    let cols = columns(&native_all, &airlock_all);
    let unexpected = c.unexpected_regressions().count();

    let _ = writeln!(out, "# Airlock CTS: {}, {}\n", info.suite, info.date);
    if !info.details.is_empty() {
        out.push_str("| | |\n| --- | --- |\n");
        for (what, value) in &info.details {
            let _ = writeln!(out, "| {} | {} |", cell(what), cell(value));
        }
        out.push('\n');
    }

    out.push_str("## Summary\n\n| | native | Airlock |\n| --- | ---: | ---: |\n");
    let _ = writeln!(
        out,
        "| cases | {} | {} |",
        native_all.total(),
        airlock_all.total()
    );
    for &col in &cols {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            col.title(),
            native_all.get(col),
            airlock_all.get(col)
        );
    }
    let time = |s: Option<f64>| s.map_or_else(|| "unknown".to_string(), format_duration);
    let _ = writeln!(
        out,
        "| wall time | {} | {} |\n",
        time(info.native_seconds),
        time(info.airlock_seconds)
    );
    match ratio(info) {
        Some(r) => {
            let _ = writeln!(out, "Wall-time ratio (Airlock / native): **{r:.2}**\n");
        }
        None => out.push_str("Wall-time ratio (Airlock / native): unknown\n\n"),
    }
    let _ = writeln!(
        out,
        "Regressions: {} ({} unexpected) · Improvements: {} · Fixed expectations: {}\n",
        c.regressions.len(),
        unexpected,
        c.improvements.len(),
        c.fixed.len()
    );

    out.push_str("## Per group\n\nEach cell is native / Airlock. ");
    out.push_str(
        "deqp-runner reports dEQP's NotSupported (and the cases of the skips list) as Skip, and \
         QualityWarning, CompatibilityWarning and Waiver as Warn.\n\n",
    );
    out.push_str("| group |");
    for col in &cols {
        let _ = write!(out, " {} |", col.title());
    }
    out.push_str(" total |\n| --- |");
    out.push_str(&" ---: |".repeat(cols.len() + 1));
    out.push('\n');
    let mut groups: Vec<&String> = c.native.keys().chain(c.airlock.keys()).collect();
    groups.sort();
    groups.dedup();
    let empty = Counts::default();
    let row = |out: &mut String, name: &str, n: &Counts, a: &Counts| {
        let _ = write!(out, "| {name} |");
        for &col in &cols {
            let _ = write!(out, " {} / {} |", n.get(col), a.get(col));
        }
        let _ = writeln!(out, " {} / {} |", n.total(), a.total());
    };
    for g in groups {
        let n = c.native.get(g).unwrap_or(&empty);
        let a = c.airlock.get(g).unwrap_or(&empty);
        row(&mut out, g, n, a);
    }
    row(&mut out, "**all**", &native_all, &airlock_all);
    out.push('\n');

    out.push_str("## Regressions\n\nPass natively, anything else through Airlock.\n\n");
    if c.regressions.is_empty() {
        out.push_str("None.\n\n");
    } else {
        out.push_str("| case | Airlock | expected |\n| --- | --- | --- |\n");
        for r in &c.regressions {
            let expected = match &r.expected_by {
                Some(e) => format!("yes: {e} ({})", e.reason),
                None => "**no**".to_string(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                r.case,
                status_text(r.airlock),
                cell(&expected)
            );
        }
        out.push('\n');
    }

    out.push_str("## Improvements\n\nAnything else natively, pass through Airlock.\n\n");
    if c.improvements.is_empty() {
        out.push_str("None.\n\n");
    } else {
        out.push_str("| case | native |\n| --- | --- |\n");
        for i in &c.improvements {
            let _ = writeln!(out, "| {} | {} |", i.case, status_text(i.native));
        }
        out.push('\n');
    }

    out.push_str("## Slowest through Airlock\n\n");
    if c.slowest.is_empty() {
        out.push_str("None.\n\n");
    } else {
        out.push_str(
            "The cases whose time grew most (deqp-runner's time per case; one that ran while the \
             machine was busy shows here too).\n\n\
             | case | native | Airlock | added |\n| --- | ---: | ---: | ---: |\n",
        );
        for s in &c.slowest {
            let _ = writeln!(
                out,
                "| {} | {:.3}s | {:.3}s | {:.3}s |",
                s.case,
                s.native,
                s.airlock,
                s.added()
            );
        }
        out.push('\n');
    }

    out.push_str("## Fixed: remove from expectations\n\n");
    if c.fixed.is_empty() {
        out.push_str("None.\n");
    } else {
        out.push_str(
            "Listed as expected failures, and pass through Airlock.\n\n\
             | case | entry | reason |\n| --- | --- | --- |\n",
        );
        for f in &c.fixed {
            let _ = writeln!(
                out,
                "| {} | {} `{}` | {} |",
                f.case,
                f.entry,
                cell(&f.entry.text),
                cell(&f.entry.reason)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expectations::{Expectations, PatternList};
    use crate::results::Results;

    fn comparison() -> Comparison {
        let native = Results::parse(
            "dEQP-VK.api.smoke.triangle,Pass,1\ndEQP-VK.api.smoke.b,Pass,1\n\
             dEQP-VK.memory.a,Fail,1\ndEQP-VK.memory.b,Pass,1\ndEQP-VK.memory.c,Skip,0\n",
            "n",
        )
        .unwrap();
        let airlock = Results::parse(
            "dEQP-VK.api.smoke.triangle,Crash,1\ndEQP-VK.api.smoke.b,Pass,1.25\n\
             dEQP-VK.memory.a,Pass,1\ndEQP-VK.memory.b,KnownFlake,1\ndEQP-VK.memory.c,Skip,0\n",
            "a",
        )
        .unwrap();
        let e = Expectations {
            fails: PatternList::parse(
                "# Mapping | broken\ndEQP-VK.memory.a\n",
                "airlock-fails.txt",
            )
            .unwrap(),
            flakes: PatternList::parse("# Races\ndEQP-VK.memory.*\n", "airlock-flakes.txt")
                .unwrap(),
            ..Expectations::default()
        };
        Comparison::new(&native, &airlock, &e)
    }

    fn info() -> ReportInfo {
        ReportInfo {
            suite: "quick".into(),
            date: "2024-05-01".into(),
            details: vec![
                ("Airlock commit".into(), "0123abcd".into()),
                ("CTS tag".into(), "vulkan-cts-1.3.5.2".into()),
            ],
            native_seconds: Some(100.0),
            airlock_seconds: Some(250.0),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(4.25), "4.2s");
        assert_eq!(format_duration(61.0), "1m 01s");
        assert_eq!(format_duration(3725.4), "1h 02m 05s");
    }

    #[test]
    fn report_has_the_key_lines() {
        let text = render(&info(), &comparison());
        let has = |line: &str| {
            assert!(
                text.lines().any(|l| l == line),
                "missing line {line:?} in:\n{text}"
            )
        };
        has("# Airlock CTS: quick, 2024-05-01");
        has("| Airlock commit | 0123abcd |");
        has("| CTS tag | vulkan-cts-1.3.5.2 |");
        has("| cases | 5 | 5 |");
        has("| Pass | 3 | 2 |");
        has("| Crash | 0 | 1 |");
        // Shown because Airlock has one; Flake is absent on both sides and so not shown.
        has("| KnownFlake | 0 | 1 |");
        assert!(!text.contains("| Flake |"));
        has("| wall time | 1m 40s | 4m 10s |");
        has("Wall-time ratio (Airlock / native): **2.50**");
        has("Regressions: 2 (1 unexpected) · Improvements: 1 · Fixed expectations: 1");
        has("| group | Pass | Fail | Skip | Warn | Crash | Timeout | KnownFlake | total |");
        has("| dEQP-VK.api | 2 / 1 | 0 / 0 | 0 / 0 | 0 / 0 | 0 / 1 | 0 / 0 | 0 / 0 | 2 / 2 |");
        has("| dEQP-VK.memory | 1 / 1 | 1 / 0 | 1 / 1 | 0 / 0 | 0 / 0 | 0 / 0 | 0 / 1 | 3 / 3 |");
        has("| **all** | 3 / 2 | 1 / 0 | 1 / 1 | 0 / 0 | 0 / 1 | 0 / 0 | 0 / 1 | 5 / 5 |");
        has("| dEQP-VK.api.smoke.triangle | Crash | **no** |");
        has("| dEQP-VK.memory.b | KnownFlake | yes: airlock-flakes.txt:2 (Races) |");
        has("| dEQP-VK.memory.a | Fail |");
        has("| dEQP-VK.memory.a | airlock-fails.txt:2 `dEQP-VK.memory.a` | Mapping \\| broken |");
        has("| dEQP-VK.api.smoke.b | 1.000s | 1.250s | 0.250s |");
    }

    #[test]
    fn empty_sections_and_unknown_times() {
        let same = Results::parse("dEQP-VK.api.a,Pass,1\n", "r").unwrap();
        let c = Comparison::new(&same, &same, &Expectations::default());
        let info = ReportInfo {
            suite: "s".into(),
            date: "d".into(),
            native_seconds: Some(3.0),
            ..ReportInfo::default()
        };
        let text = render(&info, &c);
        assert!(text.contains("| wall time | 3.0s | unknown |"), "{text}");
        assert!(text.contains("Wall-time ratio (Airlock / native): unknown"));
        assert_eq!(text.matches("None.").count(), 4, "{text}");
        assert!(text.contains("Regressions: 0 (0 unexpected)"));
    }
}
