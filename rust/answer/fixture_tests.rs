//! Data-driven verifier test over `tests/fixtures/verify_cases.jsonl` (fields `gold`, `pred`,
//! `expected`, `note`). Every case must pass; failures are listed together.

use serde::Deserialize;

use crate::answer::{verify, VerifyOptions};

#[derive(Deserialize)]
struct Case {
    gold: String,
    pred: String,
    expected: bool,
    #[serde(default)]
    note: String,
}

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/verify_cases.jsonl"
);

fn load() -> Vec<Case> {
    let text = std::fs::read_to_string(FIXTURE).expect("fixture file readable");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}", i + 1)))
        .collect()
}

#[test]
fn labeled_cases_all_pass() {
    let cases = load();
    assert!(
        cases.len() >= 300,
        "need at least 300 cases, have {}",
        cases.len()
    );
    let opts = VerifyOptions::default();
    let mut failures = Vec::new();
    for c in &cases {
        let v = verify(&c.gold, &c.pred, &opts);
        if v.equivalent != c.expected {
            failures.push(format!(
                "gold={:?} pred={:?} expected={} got={:?} ({}) [{}]",
                c.gold, c.pred, c.expected, v.reason, v.detail, c.note
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn labeled_cases_are_fast() {
    // 10 ms per call; a slow call is retried once to filter out scheduler noise.
    let opts = VerifyOptions::default();
    let time = |c: &Case| {
        let t = std::time::Instant::now();
        let _ = verify(&c.gold, &c.pred, &opts);
        t.elapsed().as_secs_f64() * 1e3
    };
    for c in load() {
        if time(&c) >= 10.0 {
            let ms = time(&c);
            assert!(
                ms < 10.0,
                "{ms:.2} ms for gold={:?} pred={:?}",
                c.gold,
                c.pred
            );
        }
    }
}
