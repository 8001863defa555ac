//! Confidence signals and the early-stopping rules (confidence gate, weighted votes, weighted
//! consensus, answer probes, ESC windows) on the real default model.

mod common;

use fmr::generate::{
    ConfidenceStop, ConsensusRule, EscParams, FinishReason, ProbeParams, RolloutHooks,
    RolloutParams, ThresholdSource, TokenEvent, VoteWeight,
};
use std::sync::Arc;

const PROBLEM: &str =
    "Tom reads 5 pages a day for 6 days. How many pages does he read? Put the answer in \\boxed{}.";

fn params(n: usize, max_tokens: usize) -> RolloutParams {
    let mut p = RolloutParams {
        n_samples: n,
        max_tokens,
        ..Default::default()
    };
    p.sampling.seed = 11;
    p.answer.last_number_fallback = true;
    p
}

#[test]
fn confidence_signals_come_from_the_sampling_pass() {
    let mut g = common::generator(4096, 2);
    let mut p = params(2, 24);
    p.confidence.keep_top_logprobs = true;
    p.confidence.window = 4;
    let mut streamed: Vec<(usize, f32, Vec<i32>)> = Vec::new();
    let mut cb = |ev: &TokenEvent<'_>| {
        streamed.push((ev.sample, ev.confidence, ev.top_tokens.to_vec()));
        true
    };
    let hooks = RolloutHooks {
        on_token: Some(&mut cb),
        cancel: None,
    };
    let r = g.solve(PROBLEM, &p, hooks).unwrap();
    let k = p.confidence.top_k;
    for (i, s) in r.samples.iter().enumerate() {
        let n = s.tokens.len();
        assert_eq!(s.token_confidence.len(), n);
        assert_eq!(s.top_tokens.len(), n * k);
        assert_eq!(s.top_logprobs.len(), n * k);
        for t in 0..n {
            let row = &s.top_logprobs[t * k..(t + 1) * k];
            // descending, all log-probabilities, and the drawn token is never more likely than
            // the first
            assert!(row.windows(2).all(|w| w[0] >= w[1]), "{row:?}");
            assert!(row.iter().all(|&l| l <= 0.0 && l.is_finite()));
            assert!(s.logprobs[t] <= row[0] + 1e-5);
            // the drawn token is among the top-k exactly when its log-prob reaches the k-th
            let tops = &s.top_tokens[t * k..(t + 1) * k];
            if s.logprobs[t] > row[k - 1] + 1e-4 {
                assert!(tops.contains(&s.tokens[t]), "token {t} of sample {i}");
            }
            let conf = -row.iter().sum::<f32>() / k as f32;
            assert!((conf - s.token_confidence[t]).abs() < 1e-4);
        }
        let c = s.confidence.unwrap();
        let mean = s.token_confidence.iter().sum::<f32>() / n as f32;
        assert!((c.mean - mean).abs() < 1e-3, "{c:?} vs {mean}");
        assert!(c.lowest_window <= c.mean + 1e-4 && c.lowest_window > 0.0);
        // the stream carried the same confidences and top tokens
        let mine: Vec<_> = streamed.iter().filter(|e| e.0 == i).collect();
        for (t, e) in mine.iter().enumerate() {
            assert_eq!(e.1, s.token_confidence[t]);
            assert_eq!(e.2, s.top_tokens[t * k..(t + 1) * k].to_vec());
        }
    }
    // Greedy: the drawn token is the most likely one.
    let mut p = params(1, 12);
    p.sampling.temperature = 0.0;
    p.confidence.keep_top_logprobs = true;
    let r = g.solve(PROBLEM, &p, RolloutHooks::default()).unwrap();
    let s = &r.samples[0];
    for t in 0..s.tokens.len() {
        assert_eq!(s.top_tokens[t * k], s.tokens[t]);
    }
    // Off: no confidences.
    let mut p = params(1, 8);
    p.confidence.top_k = 0;
    let r = g.solve(PROBLEM, &p, RolloutHooks::default()).unwrap();
    assert!(r.samples[0].token_confidence.is_empty() && r.samples[0].confidence.is_none());
}

#[test]
fn fixed_threshold_gates_every_sample() {
    let mut g = common::generator(4096, 4);
    let mut p = params(4, 64);
    p.confidence.window = 8;
    p.confidence_stop = Some(ConfidenceStop {
        threshold: ThresholdSource::Fixed { value: 1e9 },
    });
    let r = g.solve(PROBLEM, &p, RolloutHooks::default()).unwrap();
    for s in &r.samples {
        // Nothing is that confident: every sample stops as soon as its first window is full
        // (unless it ended on its own before).
        if s.finish_reason == FinishReason::LowConfidence {
            assert_eq!(s.tokens.len(), 8);
        } else {
            assert!(s.tokens.len() < 8, "{:?}", s.finish_reason);
        }
    }
    assert_eq!(r.confidence_threshold, Some(1e9));
    p.confidence_stop = Some(ConfidenceStop {
        threshold: ThresholdSource::Fixed { value: -1.0 },
    });
    let full = g.solve(PROBLEM, &p, RolloutHooks::default()).unwrap();
    assert!(full
        .samples
        .iter()
        .all(|s| s.finish_reason != FinishReason::LowConfidence));
}

#[test]
fn warmup_samples_run_first_and_match_the_full_run() {
    let mut g = common::generator(8192, 6);
    let mut p = params(6, 48);
    p.confidence.window = 8;
    let full = g.solve(PROBLEM, &p, RolloutHooks::default()).unwrap();
    p.confidence_stop = Some(ConfidenceStop {
        threshold: ThresholdSource::Warmup {
            samples: 2,
            percentile: 100.0,
        },
    });
    let r = g.solve(PROBLEM, &p, RolloutHooks::default()).unwrap();
    // The warm-up samples are the full run's; the threshold is their highest lowest window,
    // so every later sample whose windows all stay at or above it is token-identical too.
    for s in 0..2 {
        assert_eq!(r.samples[s].tokens, full.samples[s].tokens);
    }
    let lows: Vec<f64> = full.samples[..2]
        .iter()
        .map(|s| s.confidence.unwrap().lowest_window as f64)
        .collect();
    let t = r.confidence_threshold.unwrap();
    assert!((t - lows.iter().cloned().fold(f64::MIN, f64::max)).abs() < 1e-6);
    for s in 2..6 {
        let x = &r.samples[s];
        if x.finish_reason == FinishReason::LowConfidence {
            assert!(x.tokens.len() >= 8 && x.tokens.len() <= full.samples[s].tokens.len());
            assert_eq!(x.tokens[..], full.samples[s].tokens[..x.tokens.len()]);
        } else {
            assert_eq!(x.tokens, full.samples[s].tokens);
        }
    }
    assert!(r.tokens_generated <= full.tokens_generated);
}

#[test]
fn esc_stops_after_an_agreeing_window() {
    let mut g = common::generator(8192, 8);
    g.set_answer_key(Some(Arc::new(|_t: &str| Some("same".to_string()))));
    let mut p = params(8, 32);
    p.esc = Some(EscParams { window: 2 });
    let r = g.solve(PROBLEM, &p, RolloutHooks::default()).unwrap();
    assert!(r.stopped_by_consensus);
    for (i, s) in r.samples.iter().enumerate() {
        if i < 2 {
            assert!(s.finish_reason.ended_naturally(), "{:?}", s.finish_reason);
        } else {
            assert_eq!(s.finish_reason, FinishReason::Consensus);
            assert!(s.tokens.is_empty(), "sample {i} should never start");
        }
    }
    assert_eq!(r.votes[0].count, 2);
    // Disagreeing windows: every window runs, and the samples equal the full run's.
    g.set_answer_key(None);
    let full = g
        .solve(PROBLEM, &params(8, 32), RolloutHooks::default())
        .unwrap();
    let mut g2 = common::generator(8192, 8);
    g2.set_answer_key(Some(Arc::new(|t: &str| Some(t.len().to_string()))));
    let r = g2.solve(PROBLEM, &p, RolloutHooks::default()).unwrap();
    for (a, b) in r.samples.iter().zip(&full.samples) {
        if !r.stopped_by_consensus {
            assert_eq!(a.tokens, b.tokens);
        }
    }
}

#[test]
fn probes_stop_samples_and_are_counted_apart() {
    let mut g = common::generator(8192, 8);
    let mut p = params(4, 96);
    p.stop_strings.clear();
    p.probe = Some(ProbeParams {
        every: 8,
        agree: 2,
        ..Default::default()
    });
    // A key that answers for any text: every probe gives "x", so two probes agree.
    g.set_answer_key(Some(Arc::new(|_t: &str| Some("x".to_string()))));
    let r = g.solve(PROBLEM, &p, RolloutHooks::default()).unwrap();
    assert!(r.probe_tokens > 0);
    let sum: usize = r.samples.iter().map(|s| s.tokens.len()).sum();
    assert_eq!(
        r.tokens_generated, sum,
        "probe tokens are not sample tokens"
    );
    for s in &r.samples {
        if s.finish_reason == FinishReason::Probe {
            assert!(s.probes.len() >= 2);
            assert_eq!(s.answer.as_deref(), Some("x"));
            assert!(s.probes.iter().all(|pr| pr.at % 8 == 0 && pr.at > 0));
            // stopped within a probe's length of the second probe
            assert!(s.tokens.len() <= 16 + p.probe.as_ref().unwrap().max_tokens + 1);
        }
    }
    assert!(r
        .samples
        .iter()
        .any(|s| s.finish_reason == FinishReason::Probe));
    // A probe run that never agrees leaves the samples as they were.
    let mut g2 = common::generator(8192, 8);
    let mut q = p.clone();
    q.probe.as_mut().unwrap().agree = 1000;
    let with = g2.solve(PROBLEM, &q, RolloutHooks::default()).unwrap();
    q.probe = None;
    let without = g2.solve(PROBLEM, &q, RolloutHooks::default()).unwrap();
    for (a, b) in with.samples.iter().zip(&without.samples) {
        assert_eq!(a.tokens, b.tokens);
        // A probe is taken at each multiple of `every` with no probe of the sample in flight;
        // one lasts at most `max_tokens` steps (12), so at least one in every 16 tokens
        // completes, except the one still in flight at the end.
        assert!(a.probes.len() + 1 >= a.tokens.len() / 16, "{:?}", a.probes);
        assert!(a
            .probes
            .iter()
            .all(|pr| pr.at % 8 == 0 && pr.done >= pr.at && pr.done < pr.at + 12));
        assert!(a.probes.windows(2).all(|w| w[0].done <= w[1].at));
    }
}

#[test]
fn weighted_votes_and_top_percent_follow_the_confidences() {
    let mut g = common::generator(8192, 6);
    let mut p = params(6, 48);
    p.vote.weight = VoteWeight::LowestWindow;
    p.confidence.window = 8;
    let r = g.solve(PROBLEM, &p, RolloutHooks::default()).unwrap();
    let total: f64 = r.votes.iter().map(|v| v.weight).sum();
    let expect: f64 = r
        .samples
        .iter()
        .filter(|s| s.answer.is_some())
        .map(|s| s.confidence.unwrap().lowest_window as f64)
        .sum();
    assert!((total - expect).abs() < 1e-3, "{total} vs {expect}");
    assert!(r.votes.windows(2).all(|w| w[0].weight >= w[1].weight));
    // Only the single most confident sample votes.
    p.vote.top_percent = 1.0;
    let r = g.solve(PROBLEM, &p, RolloutHooks::default()).unwrap();
    let n_votes: usize = r.votes.iter().map(|v| v.count).sum();
    if r.samples.iter().any(|s| s.answer.is_some()) {
        assert_eq!(n_votes, 1);
        let best = r
            .samples
            .iter()
            .filter(|s| s.answer.is_some())
            .max_by(|a, b| {
                a.confidence
                    .unwrap()
                    .lowest_window
                    .total_cmp(&b.confidence.unwrap().lowest_window)
            })
            .unwrap();
        assert_eq!(r.voted_answer, best.answer);
    }
    // Weighted consensus fires once the leader holds the share.
    g.set_answer_key(Some(Arc::new(|_t: &str| Some("x".to_string()))));
    p.vote.top_percent = 100.0;
    p.consensus = ConsensusRule::Weighted {
        tau: 0.95,
        min_votes: 1,
    };
    p.max_tokens = 200;
    p.stop_strings = vec![".".into()];
    let r = g.solve(PROBLEM, &p, RolloutHooks::default()).unwrap();
    let reasons: Vec<_> = r.samples.iter().map(|s| s.finish_reason).collect();
    assert!(
        r.stopped_by_consensus || reasons.iter().all(|f| f.ended_naturally()),
        "{reasons:?}"
    );
}

#[test]
fn new_rules_are_validated() {
    for bad in [
        r#"{"n_samples": 4, "esc": {"window": 5}}"#,
        r#"{"n_samples": 4, "probe": {"every": 0}}"#,
        r#"{"n_samples": 4, "confidence_stop": {"threshold": {"source": "warmup", "samples": 4}}}"#,
        r#"{"n_samples": 4, "confidence": {"top_k": 0}, "vote": {"weight": "tail"}}"#,
        r#"{"n_samples": 4, "vote": {"top_percent": 0}}"#,
        r#"{"n_samples": 4, "consensus": {"rule": "weighted", "tau": 1.5}}"#,
        r#"{"n_samples": 4, "probe": {"evry": 3}}"#,
        r#"{"n_samples": 4, "consensus": {"rule": "lossless"}, "vote": {"weight": "mean"}}"#,
        r#"{"n_samples": 4, "consensus": {"rule": "lossless"}, "vote": {"top_percent": 50}}"#,
    ] {
        assert!(RolloutParams::from_json(bad).is_err(), "accepted {bad}");
    }
    let ok = RolloutParams::from_json(
        r#"{"n_samples": 8, "consensus": {"rule": "weighted"}, "probe": {}, "esc": {"window": 2},
            "confidence_stop": {"threshold": {"source": "warmup"}}, "vote": {"weight": "tail", "top_percent": 50}}"#,
    )
    .unwrap();
    assert_eq!(ok.sequences_needed(), 16);
    // A missing calibration file fails at validation, before decoding.
    let mut g = common::generator(4096, 2);
    let p = RolloutParams::from_json(
        r#"{"n_samples": 2, "confidence_stop": {"threshold": {"source": "file", "path": "/nonexistent/calib.json"}}}"#,
    )
    .unwrap();
    assert!(g.solve(PROBLEM, &p, RolloutHooks::default()).is_err());
}

/// The lossless rule, run through the multi-group decode loop (several problems in flight), gives
/// every problem the full run's majority, and the samples it let finish are the full run's. Twice:
/// with the verifier's answer key, and with a two-valued key on the same real completions (the
/// parity of the text's length), under which samples agree often and the rule cuts groups.
#[test]
fn lossless_rule_keeps_the_full_runs_majority_on_every_problem() {
    let problems = [
        "Janet has 3 apples and buys 4 more. How many apples does she have? Put the answer in \\boxed{}.",
        "What is 15 + 27? Put the result in \\boxed{}.",
        PROBLEM,
        "A box holds 12 eggs. How many eggs are in 3 boxes? Answer in \\boxed{}.",
        "Sara had 20 dollars and spent 8. How much is left? Answer in \\boxed{}.",
        "What is 9 times 7? Put the answer in \\boxed{}.",
    ];
    let parity: fmr::generate::AnswerKey = Arc::new(|t: &str| Some((t.len() % 2).to_string()));
    for key in [None, Some(parity)] {
        let coarse = key.is_some();
        let mut g = common::generator(16384, 16);
        g.set_answer_key(key);
        let mut p = params(8, 40);
        let full = g.solve_many(&problems, &p, 16, None).unwrap();
        p.consensus = ConsensusRule::Lossless;
        let early = g.solve_many(&problems, &p, 16, None).unwrap();
        let (mut saved, mut cut_groups) = (0usize, 0usize);
        for (i, (f, e)) in full.iter().zip(&early).enumerate() {
            let (f, e) = (f.as_ref().unwrap(), e.as_ref().unwrap());
            assert_eq!(
                e.voted_answer, f.voted_answer,
                "problem {i} (coarse key: {coarse})"
            );
            for (a, b) in e.samples.iter().zip(&f.samples) {
                if a.finish_reason == FinishReason::Consensus {
                    assert_eq!(a.tokens[..], b.tokens[..a.tokens.len()]);
                } else {
                    assert_eq!(a.tokens, b.tokens);
                }
            }
            assert!(e.tokens_generated <= f.tokens_generated);
            saved += f.tokens_generated - e.tokens_generated;
            cut_groups += usize::from(e.stopped_by_consensus);
        }
        if coarse {
            assert!(cut_groups > 0 && saved > 0, "the rule never fired");
        }
    }
}
