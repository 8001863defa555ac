//! Data-driven verifier test over `tests/fixtures/verify_cases*.jsonl`. Each line has `gold`,
//! `expected`, `note` (its category is the text before the first `:`), and either `pred` (an
//! extracted answer, checked with `verify`) or `completion` (a whole model output, checked with
//! `verify_completion`), both with the default options. Every case must pass; failures are
//! listed together, and the per-category counts are printed.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::answer::{verify, verify_completion, Verdict, VerifyOptions};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    gold: String,
    #[serde(default)]
    pred: Option<String>,
    #[serde(default)]
    completion: Option<String>,
    expected: bool,
    #[serde(default)]
    note: String,
}

impl Case {
    fn check(&self, opts: &VerifyOptions) -> Verdict {
        match (&self.pred, &self.completion) {
            (_, Some(c)) => verify_completion(&self.gold, c, opts),
            (Some(p), None) => verify(&self.gold, p, opts),
            (None, None) => panic!("case without pred or completion: {:?}", self.gold),
        }
    }

    fn category(&self) -> &str {
        self.note.split(':').next().unwrap_or("").trim()
    }
}

const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Every `verify_cases*.jsonl` under tests/fixtures, as (file name, cases).
fn load() -> Vec<(String, Vec<Case>)> {
    let mut files: Vec<_> = std::fs::read_dir(FIXTURE_DIR)
        .expect("fixture dir readable")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("verify_cases") && n.ends_with(".jsonl"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(format!("{FIXTURE_DIR}/{name}"))
                .expect("fixture file readable");
            let cases = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| {
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1))
                })
                .collect();
            (name, cases)
        })
        .collect()
}

#[test]
fn labeled_cases_all_pass() {
    let files = load();
    let total: usize = files.iter().map(|(_, c)| c.len()).sum();
    assert!(total >= 300, "need at least 300 cases, have {total}");
    let opts = VerifyOptions::default();
    let mut failures = Vec::new();
    let mut per_category: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (name, cases) in &files {
        for c in cases {
            let v = c.check(&opts);
            let ok = v.equivalent == c.expected;
            let entry = per_category
                .entry(format!("{name} / {}", c.category()))
                .or_default();
            entry.0 += ok as usize;
            entry.1 += 1;
            if !ok {
                failures.push(format!(
                    "[{name}] gold={:?} {}={:?} expected={} got={:?} ({}) [{}]",
                    c.gold,
                    if c.completion.is_some() {
                        "completion"
                    } else {
                        "pred"
                    },
                    c.completion.as_ref().or(c.pred.as_ref()),
                    c.expected,
                    v.reason,
                    v.detail,
                    c.note
                ));
            }
        }
    }
    for (cat, (ok, n)) in &per_category {
        eprintln!("{ok:>4}/{n:<4} {cat}");
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn labeled_cases_are_fast() {
    // 10 ms per call; a slow call is retried once to filter out scheduler noise.
    let opts = VerifyOptions::default();
    let time = |c: &Case| {
        let t = std::time::Instant::now();
        let _ = c.check(&opts);
        t.elapsed().as_secs_f64() * 1e3
    };
    for (_, cases) in load() {
        for c in cases {
            if time(&c) >= 10.0 {
                let ms = time(&c);
                assert!(
                    ms < 10.0,
                    "{ms:.2} ms for gold={:?} pred={:?} completion={:?}",
                    c.gold,
                    c.pred,
                    c.completion
                );
            }
        }
    }
}
