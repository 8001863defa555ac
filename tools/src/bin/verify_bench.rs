//! Times the verifier on (gold, pred) pairs from JSONL files and writes one JSON line per pair:
//! `{"i": index, "equivalent": bool, "reason": code, "ns": median nanoseconds per call,
//! "detail": the verdict's detail (normalized gold and prediction)}`.
//!
//! Usage: `cargo run --release --example verify_bench -- PAIRS.jsonl [REPEATS]`.
//! Each line of PAIRS.jsonl needs a string `gold` and either `pred` (an extracted answer, timed
//! with `verify`) or `completion` (a raw model output, timed with `verify_completion`).

use std::time::Instant;

use fmr::answer::{verify, verify_completion, VerifyOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: verify_bench PAIRS.jsonl [REPEATS]");
        std::process::exit(2);
    };
    let repeats: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(21)
        .max(1);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            std::process::exit(1);
        }
    };
    let opts = VerifyOptions::default();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("line {}: {e}", i + 1);
                continue;
            }
        };
        let gold = v.get("gold").and_then(|x| x.as_str()).unwrap_or("");
        let completion = v.get("completion").and_then(|x| x.as_str());
        let pred = completion
            .or_else(|| v.get("pred").and_then(|x| x.as_str()))
            .unwrap_or("");
        let check = if completion.is_some() {
            verify_completion
        } else {
            verify
        };
        let mut times = Vec::with_capacity(repeats);
        let mut verdict = check(gold, pred, &opts);
        for _ in 0..repeats {
            let t = Instant::now();
            verdict = std::hint::black_box(check(
                std::hint::black_box(gold),
                std::hint::black_box(pred),
                &opts,
            ));
            times.push(t.elapsed().as_nanos());
        }
        times.sort_unstable();
        let out = serde_json::json!({
            "i": i,
            "equivalent": verdict.equivalent,
            "reason": verdict.reason.code(),
            "ns": times[times.len() / 2],
            "detail": verdict.detail,
        });
        println!("{out}");
    }
}
