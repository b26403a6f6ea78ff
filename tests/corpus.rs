//! Detector quality measured on other projects' own test data (issue 18): gitleaks' rule tests
//! and Presidio's recognizer tests, extracted into `tests/corpus/cases.jsonl` by
//! `scripts/corpus/build.py` (see `tests/corpus/README.md`).
//!
//! Every case is redacted as one plain text with the default policy and personal data on,
//! both categories redacted. A true positive (`tp`) is *removed* when the output differs from
//! the text and none of its expected values (the `spans`) is left in it; a false positive
//! (`fp`) is *changed* when the output differs from the text at all. The figures per source
//! and rule are printed by
//!
//! ```text
//! cargo test --release --test corpus -- --ignored --nocapture
//! ```
//!
//! and written to a file too when `CORPUS_RESULTS` names one (`tests/corpus/RESULTS.md`).
//! The test fails when a source removes fewer true positives or changes more false positives
//! than [`RATCHET`] records: raise the floor there when detectors get better.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;
use veilgate::redact::{
    Action, CategoryActions, Direction, PolicySpec, Redactor, RequestRedaction,
};

/// What each source scored when the corpus was last measured. Update it (one line per source)
/// when detectors improve; a rebuilt corpus needs it measured again.
const RATCHET: [Ratchet; 2] = [
    Ratchet {
        source: "gitleaks",
        tps: 16012,
        fps: 437,
        tp_removed_at_least: 15948,
        // 27 of these are telegram-bot-api-token negatives, token-shaped values
        // (`"4643:Az_og36h…"`) assigned to `telegram_api_token`: credentials a gateway hides,
        // whatever gitleaks' telegram regex says of their shape (90 before generic values took
        // `:` and long digit runs, 99 once Google's public sample keys were allow-listed, 85
        // with Slack's token structures, PEM blocks needing key material, AWS's documented
        // key id allowed and names, paths, files, versions and hosts no generic secret, 84
        // with `$VAR` and `$(command)` references no secret either).
        fp_changed_at_most: 84,
    },
    Ratchet {
        source: "presidio",
        tps: 201,
        fps: 186,
        tp_removed_at_least: 200,
        fp_changed_at_most: 1,
    },
];

struct Ratchet {
    source: &'static str,
    /// How many true and false positives the corpus holds for this source.
    tps: usize,
    fps: usize,
    tp_removed_at_least: usize,
    fp_changed_at_most: usize,
}

#[derive(Deserialize)]
struct Case {
    source: String,
    rule: String,
    kind: Kind,
    text: String,
    /// The expected values: `[start, end)` in Unicode scalar values of `text`.
    #[serde(default)]
    spans: Vec<[usize; 2]>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Tp,
    Fp,
}

/// The figures of one rule (or of a whole source).
#[derive(Default)]
struct Tally {
    tps: usize,
    removed: usize,
    /// True positives whose text changed but which still contain an expected value.
    touched_kept: usize,
    fps: usize,
    changed: usize,
    /// In how many cases each of our detectors fired, on true and on false positives.
    fired_tp: BTreeMap<String, usize>,
    fired_fp: BTreeMap<String, usize>,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.tps += other.tps;
        self.removed += other.removed;
        self.touched_kept += other.touched_kept;
        self.fps += other.fps;
        self.changed += other.changed;
    }
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        "–".to_owned()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

/// The two detectors that fired most, with their counts.
fn top(fired: &BTreeMap<String, usize>) -> String {
    let mut v: Vec<_> = fired.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut s: Vec<String> = v.iter().take(2).map(|(d, n)| format!("{d} {n}")).collect();
    if v.len() > 2 {
        s.push("…".to_owned());
    }
    s.join(", ")
}

/// The expected values of a case, cut out of its text by code-point offsets.
fn expected_values(case: &Case) -> Vec<&str> {
    let bounds: Vec<usize> = case
        .text
        .char_indices()
        .map(|(i, _)| i)
        .chain([case.text.len()])
        .collect();
    case.spans
        .iter()
        .map(|&[start, end]| &case.text[bounds[start]..bounds[end]])
        .collect()
}

/// The corpus: `VEILGATE_CORPUS`, else `tests/corpus/cases.jsonl` (not committed: rebuild it
/// with `scripts/corpus/build.py`, see `tests/corpus/README.md`).
fn load() -> Vec<Case> {
    let path = std::env::var("VEILGATE_CORPUS").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/cases.jsonl").to_owned()
    });
    let data = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{path}: {e}; build the corpus first (scripts/corpus/build.py, tests/corpus/README.md)"
        )
    });
    data.lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("cases.jsonl:{}: {e}", n + 1))
        })
        .collect()
}

/// The default policy with personal data on: both categories redacted, both ways.
fn redactor() -> Redactor {
    let all = CategoryActions {
        secrets: Action::Redact,
        pii: Action::Redact,
    };
    let spec = PolicySpec {
        request: all,
        response: all,
        ..PolicySpec::default()
    };
    Redactor::new(&spec).expect("default policy")
}

/// Figures per source, then per rule.
fn measure(cases: &[Case]) -> BTreeMap<&str, BTreeMap<&str, Tally>> {
    let redactor = redactor();
    // `CORPUS_MISSES=1`: every true positive not removed and every must-pass text changed, on
    // standard error, to see which shapes the detectors miss.
    let misses = std::env::var_os("CORPUS_MISSES").is_some();
    let mut by_source: BTreeMap<&str, BTreeMap<&str, Tally>> = BTreeMap::new();
    for case in cases {
        let mut cx = RequestRedaction::new();
        let out = redactor
            .redact_text(Direction::Request, &case.text, &mut cx)
            .expect("no detector blocks in this policy");
        let changed = *out != *case.text;
        let tally = by_source
            .entry(&case.source)
            .or_default()
            .entry(&case.rule)
            .or_default();
        let fired = match case.kind {
            Kind::Tp => &mut tally.fired_tp,
            Kind::Fp => &mut tally.fired_fp,
        };
        for count in cx.counts() {
            *fired.entry(count.detector.to_string()).or_default() += 1;
        }
        match case.kind {
            Kind::Tp => {
                tally.tps += 1;
                let kept = expected_values(case).iter().any(|v| out.contains(v));
                if changed && !kept {
                    tally.removed += 1;
                } else if changed {
                    tally.touched_kept += 1;
                }
                if misses && (!changed || kept) {
                    eprintln!("missed {} {}: {:?}", case.source, case.rule, case.text);
                }
            }
            Kind::Fp => {
                tally.fps += 1;
                tally.changed += usize::from(changed);
                if misses && changed {
                    eprintln!(
                        "changed {} {}: {:?} -> {:?}",
                        case.source, case.rule, case.text, out
                    );
                }
            }
        }
    }
    by_source
}

fn report(by_source: &BTreeMap<&str, BTreeMap<&str, Tally>>) -> String {
    let mut md = String::new();
    let totals: BTreeMap<&str, Tally> = by_source
        .iter()
        .map(|(source, rules)| {
            let mut t = Tally::default();
            rules.values().for_each(|r| t.add(r));
            (*source, t)
        })
        .collect();
    let mut all = Tally::default();
    totals.values().for_each(|t| all.add(t));

    md.push_str("| source | true positives | removed | % | false positives | changed | % |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for (source, t) in totals.iter().chain([(&"total", &all)]) {
        let _ = writeln!(
            md,
            "| {source} | {} | {} | {} | {} | {} | {} |",
            t.tps,
            t.removed,
            percent(t.removed, t.tps),
            t.fps,
            t.changed,
            percent(t.changed, t.fps)
        );
    }

    let mut rules: Vec<(&str, &str, &Tally)> = by_source
        .iter()
        .flat_map(|(s, rules)| rules.iter().map(move |(r, t)| (*s, *r, t)))
        .collect();
    md.push_str("\n## Fewest true positives removed\n\n");
    md.push_str("| source | rule | tp | removed | % | missed | detectors that fired |\n");
    md.push_str("|---|---|---:|---:|---:|---:|---|\n");
    rules.sort_by(|a, b| {
        let rate = |t: &Tally| t.removed as f64 / t.tps.max(1) as f64;
        rate(a.2)
            .total_cmp(&rate(b.2))
            .then((b.2.tps - b.2.removed).cmp(&(a.2.tps - a.2.removed)))
            .then(a.1.cmp(b.1))
    });
    for (source, rule, t) in rules.iter().filter(|r| r.2.tps > 0).take(10) {
        let _ = writeln!(
            md,
            "| {source} | {rule} | {} | {} | {} | {} | {} |",
            t.tps,
            t.removed,
            percent(t.removed, t.tps),
            t.tps - t.removed,
            top(&t.fired_tp)
        );
    }
    md.push_str("\n## Most false positives changed\n\n");
    md.push_str("| source | rule | fp | changed | % | detectors that fired |\n");
    md.push_str("|---|---|---:|---:|---:|---|\n");
    rules.sort_by(|a, b| b.2.changed.cmp(&a.2.changed).then(a.1.cmp(b.1)));
    for (source, rule, t) in rules.iter().filter(|r| r.2.changed > 0).take(10) {
        let _ = writeln!(
            md,
            "| {source} | {rule} | {} | {} | {} | {} |",
            t.fps,
            t.changed,
            percent(t.changed, t.fps),
            top(&t.fired_fp)
        );
    }

    for (source, rules) in by_source {
        let _ = write!(
            md,
            "\n## {source}, per rule\n\n\
             `touched` counts true positives whose text changed but that still contain an \
             expected value.\n\n\
             | rule | tp | removed | % | touched | detectors (tp) | fp | changed | % | detectors (fp) |\n\
             |---|---:|---:|---:|---:|---|---:|---:|---:|---|\n"
        );
        for (rule, t) in rules {
            let _ = writeln!(
                md,
                "| {rule} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                t.tps,
                t.removed,
                percent(t.removed, t.tps),
                t.touched_kept,
                top(&t.fired_tp),
                t.fps,
                t.changed,
                percent(t.changed, t.fps),
                top(&t.fired_fp)
            );
        }
    }
    md
}

#[test]
#[ignore = "needs the corpus built by scripts/corpus/build.py (tests/corpus/README.md): cargo test --release --test corpus -- --ignored --nocapture"]
fn detector_quality_on_peer_test_data() {
    let cases = load();
    let by_source = measure(&cases);
    let md = report(&by_source);
    println!("{md}");
    if let Ok(path) = std::env::var("CORPUS_RESULTS") {
        let page = format!(
            "# Detector quality on gitleaks' and Presidio's test data\n\n\
             Written by `CORPUS_RESULTS=tests/corpus/RESULTS.md cargo test --release --test corpus -- --ignored`; \
             what the figures mean is in `README.md`.\n\n{md}"
        );
        std::fs::write(&path, page).expect("write CORPUS_RESULTS");
    }

    for r in &RATCHET {
        let mut t = Tally::default();
        by_source
            .get(r.source)
            .into_iter()
            .flat_map(|rules| rules.values())
            .for_each(|rule| t.add(rule));
        assert_eq!(
            (t.tps, t.fps),
            (r.tps, r.fps),
            "{}: the corpus changed; measure again and update RATCHET",
            r.source
        );
        assert!(
            t.removed >= r.tp_removed_at_least,
            "{}: {} true positives removed, fewer than the {} recorded in RATCHET",
            r.source,
            t.removed,
            r.tp_removed_at_least
        );
        assert!(
            t.changed <= r.fp_changed_at_most,
            "{}: {} false positives changed, more than the {} recorded in RATCHET",
            r.source,
            t.changed,
            r.fp_changed_at_most
        );
    }
}
