//! Group rollouts with every stop policy, on the real default model.

mod common;

use fmr::generate::{
    BudgetForcing, ConsensusRule, FinishReason, PromptFormat, PromptParams, RolloutHooks,
    RolloutParams, TokenEvent,
};
use fmr::ErrorCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STORY: &str = "Write a long story about a dragon who learns arithmetic.";

fn params(n: usize, max_tokens: usize) -> RolloutParams {
    RolloutParams {
        n_samples: n,
        max_tokens,
        ..Default::default()
    }
}

fn raw(p: &mut RolloutParams) {
    p.prompt = PromptParams {
        system: None,
        format: PromptFormat::Raw,
    };
}

#[test]
fn same_seed_same_output_and_seeds_differ_per_sample() {
    let mut g = common::generator(2048, 4);
    let p = params(4, 24);
    let a = g.solve(STORY, &p, RolloutHooks::default()).unwrap();
    let b = g.solve(STORY, &p, RolloutHooks::default()).unwrap();
    for (x, y) in a.samples.iter().zip(&b.samples) {
        assert_eq!(x.tokens, y.tokens);
        assert_eq!(x.text, y.text);
    }
    let distinct: std::collections::HashSet<_> = a.samples.iter().map(|s| &s.tokens).collect();
    assert!(
        distinct.len() > 1,
        "samples with different seeds should differ"
    );
}

#[test]
fn log_probs_are_recorded_for_every_token() {
    let mut g = common::generator(2048, 2);
    let r = g
        .solve(STORY, &params(2, 16), RolloutHooks::default())
        .unwrap();
    for s in &r.samples {
        assert_eq!(s.tokens.len(), s.logprobs.len());
        assert!(
            s.logprobs.iter().all(|&l| l.is_finite() && l <= 0.0),
            "{:?}",
            s.logprobs
        );
    }
    // Greedy picks the arg-max, whose log-prob is the largest possible: mean log-prob is high.
    let mut p = params(1, 16);
    p.sampling.temperature = 0.0;
    let r = g.solve(STORY, &p, RolloutHooks::default()).unwrap();
    let mean: f32 = r.samples[0].logprobs.iter().sum::<f32>() / 16.0;
    assert!(mean > -2.0, "greedy mean log-prob {mean}");
}

#[test]
fn eos_ends_a_sample_and_is_kept_as_last_token() {
    let mut g = common::generator(1024, 1);
    let mut p = params(1, 64);
    p.sampling.temperature = 0.0;
    let r = g
        .solve(
            "What is 12 times 7? Answer briefly.",
            &p,
            RolloutHooks::default(),
        )
        .unwrap();
    let s = &r.samples[0];
    assert_eq!(s.finish_reason, FinishReason::Eos, "{}", s.text);
    assert!(common::smollm2().is_eog(*s.tokens.last().unwrap()));
}

#[test]
fn per_sample_token_limit() {
    let mut g = common::generator(2048, 3);
    let r = g
        .solve(STORY, &params(3, 7), RolloutHooks::default())
        .unwrap();
    for s in &r.samples {
        if s.finish_reason == FinishReason::Length {
            assert_eq!(s.tokens.len(), 7);
        } else {
            assert!(s.tokens.len() <= 7);
        }
    }
    assert!(r
        .samples
        .iter()
        .any(|s| s.finish_reason == FinishReason::Length));
}

#[test]
fn stop_string_stops_right_where_it_appears() {
    let mut g = common::generator(2048, 1);
    let mut p = params(1, 40);
    p.sampling.temperature = 0.0;
    let full = g.solve(STORY, &p, RolloutHooks::default()).unwrap();
    let text = &full.samples[0].text;
    // Pick a word from the middle of the greedy text as the stop string.
    let word = text
        .split_whitespace()
        .filter(|w| w.len() >= 4)
        .nth(3)
        .expect("greedy story has words")
        .to_string();
    p.stop_strings = vec![word.clone()];
    let r = g.solve(STORY, &p, RolloutHooks::default()).unwrap();
    let s = &r.samples[0];
    assert_eq!(s.finish_reason, FinishReason::Stop);
    let end = text.find(&word).unwrap() + word.len();
    assert!(s.text.contains(&word));
    assert!(s.text.len() < end + 16, "stopped late: {:?}", s.text);
    assert!(s.tokens.len() < full.samples[0].tokens.len());
}

#[test]
fn thinking_budget_without_forcing_stops_with_budget() {
    let mut g = common::generator(2048, 2);
    let mut p = params(2, 64);
    p.thinking_budget = Some(5);
    let r = g.solve(STORY, &p, RolloutHooks::default()).unwrap();
    for s in &r.samples {
        assert_eq!(s.finish_reason, FinishReason::Budget);
        assert_eq!(s.tokens.len(), 5);
    }
}

#[test]
fn budget_forcing_appends_the_closing_and_gets_a_boxed_answer() {
    let mut g = common::generator(1024, 1);
    let mut p = params(1, 64);
    raw(&mut p);
    p.sampling.temperature = 0.0;
    p.thinking_budget = Some(3);
    p.stop_at_boxed = true;
    p.budget_forcing = Some(BudgetForcing {
        text: " The answer is $\\boxed{".into(),
        extra_tokens: 10,
    });
    let mut streamed: Vec<u8> = Vec::new();
    let mut forced_events = 0usize;
    let mut cb = |ev: &TokenEvent<'_>| {
        streamed.extend_from_slice(ev.piece);
        if ev.forced {
            assert_eq!(ev.logprob, 0.0);
            forced_events += 1;
        }
        true
    };
    let r = g
        .solve(
            "Question: What is 2+3? Answer briefly.\nAnswer:",
            &p,
            RolloutHooks {
                on_token: Some(&mut cb),
                cancel: None,
            },
        )
        .unwrap();
    let s = &r.samples[0];
    // The stream carries the forced text too (flagged), so it equals the result's text.
    assert_eq!(String::from_utf8_lossy(&streamed), s.text);
    assert_eq!(forced_events, s.forced_tokens);
    assert_eq!(s.finish_reason, FinishReason::Forced, "{:?}", s.text);
    assert!(s.forced_tokens > 0);
    assert!(s.text.contains("The answer is $\\boxed{"), "{:?}", s.text);
    assert!(
        s.text.ends_with('}') || s.text.contains("}"),
        "{:?}",
        s.text
    );
    assert!(s.answer.is_some(), "{:?}", s.text);
    // Forced tokens carry log-prob 0 and sit right after the 3 sampled ones.
    assert!(s.logprobs[3..3 + s.forced_tokens].iter().all(|&l| l == 0.0));
    assert!(s.tokens.len() <= 3 + s.forced_tokens + 10);
}

#[test]
fn group_token_budget_caps_the_whole_group() {
    let mut g = common::generator(2048, 4);
    let mut p = params(4, 64);
    p.group_token_budget = Some(22);
    let r = g.solve(STORY, &p, RolloutHooks::default()).unwrap();
    assert!(
        r.tokens_generated >= 22 && r.tokens_generated < 22 + 4,
        "{}",
        r.tokens_generated
    );
    assert!(r
        .samples
        .iter()
        .any(|s| s.finish_reason == FinishReason::Budget));
}

#[test]
fn k_of_n_consensus_stops_the_group() {
    let mut g = common::generator(2048, 4);
    // Every completion votes for the same answer; the first space ends a sample, so samples
    // finish at different steps and the group stops once two have.
    g.set_answer_key(Some(Arc::new(|_t: &str| Some("same".to_string()))));
    let mut q = params(4, 48);
    q.consensus = ConsensusRule::KOfN { k: 2 };
    q.stop_strings = vec![" ".into()];
    let r = g.solve(STORY, &q, RolloutHooks::default()).unwrap();
    assert!(
        r.stopped_by_consensus
            || r.samples
                .iter()
                .all(|s| s.finish_reason == FinishReason::Stop)
    );
    let natural = r
        .samples
        .iter()
        .filter(|s| s.finish_reason == FinishReason::Stop)
        .count();
    assert!(
        natural >= 2,
        "{:?}",
        r.samples
            .iter()
            .map(|s| s.finish_reason)
            .collect::<Vec<_>>()
    );
    assert_eq!(r.votes[0].answer, "same");
}

#[test]
fn consensus_cuts_running_samples_and_saves_tokens() {
    let mut g = common::generator(4096, 4);
    // Samples vote "short" only when they end within 10 tokens; others never finish early.
    g.set_answer_key(Some(Arc::new(|_t: &str| Some("x".to_string()))));
    let mut p = params(4, 200);
    p.stop_strings = vec!["\n".into()];
    p.consensus = ConsensusRule::KOfN { k: 1 };
    let r = g.solve(STORY, &p, RolloutHooks::default()).unwrap();
    let reasons: Vec<_> = r.samples.iter().map(|s| s.finish_reason).collect();
    if r.stopped_by_consensus {
        assert!(reasons.contains(&FinishReason::Consensus), "{reasons:?}");
        assert!(r.tokens_generated < r.tokens_fixed_budget);
        // Cut samples do not vote: only the samples that ended on their own are counted.
        let ended = reasons.iter().filter(|f| f.ended_naturally()).count();
        assert_eq!(r.votes[0].count, ended, "{reasons:?}");
    } else {
        // every sample finished in the same step: nothing left to cut
        assert!(reasons.iter().all(|f| f.ended_naturally()), "{reasons:?}");
    }
}

#[test]
fn lossless_consensus_returns_the_full_runs_majority() {
    let problems = [
        "Janet has 3 apples and buys 4 more. How many apples does she have? Reply with \\boxed{N}.",
        "What is 15 + 27? Put the result in \\boxed{}.",
        "Tom reads 5 pages a day for 6 days. How many pages? Answer in \\boxed{}.",
    ];
    let mut g = common::generator(8192, 8);
    // The verifier's key with the last-number fallback (SmolLM2 rarely boxes).
    let mut saved = 0usize;
    let mut total = 0usize;
    for problem in problems {
        let mut p = params(8, 96);
        p.sampling.seed = 7;
        p.answer.last_number_fallback = true;
        let full = g.solve(problem, &p, RolloutHooks::default()).unwrap();
        p.consensus = ConsensusRule::Lossless;
        let early = g.solve(problem, &p, RolloutHooks::default()).unwrap();
        assert_eq!(early.voted_answer, full.voted_answer, "problem {problem}");
        // Samples that ran to their end are token-identical to the full run.
        for (e, f) in early.samples.iter().zip(&full.samples) {
            if e.finish_reason != FinishReason::Consensus {
                assert_eq!(e.tokens, f.tokens);
            }
        }
        saved += full.tokens_generated - early.tokens_generated;
        total += full.tokens_generated;
    }
    eprintln!("lossless consensus saved {saved} of {total} tokens");
}

#[test]
fn deadline_stops_the_problem() {
    let mut g = common::generator(4096, 2);
    let mut p = params(2, 1000);
    p.deadline_ms = Some(300);
    let t = Instant::now();
    let r = g.solve(STORY, &p, RolloutHooks::default()).unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(r
        .samples
        .iter()
        .all(|s| s.finish_reason == FinishReason::Deadline || s.finish_reason.ended_naturally()));
    assert!(r
        .samples
        .iter()
        .any(|s| s.finish_reason == FinishReason::Deadline));
}

#[test]
fn cancel_flag_from_another_thread() {
    let mut g = common::generator(4096, 2);
    let flag = Arc::new(AtomicBool::new(false));
    let setter = {
        let flag = flag.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            flag.store(true, Ordering::SeqCst);
        })
    };
    let r = g
        .solve(
            STORY,
            &params(2, 1000),
            RolloutHooks {
                on_token: None,
                cancel: Some(flag),
            },
        )
        .unwrap();
    setter.join().unwrap();
    assert!(r.cancelled);
    assert!(r
        .samples
        .iter()
        .any(|s| s.finish_reason == FinishReason::Cancelled));
    assert!(r.tokens_generated < 2000);
}

#[test]
fn streaming_callback_sees_every_piece_and_can_cancel() {
    let mut g = common::generator(2048, 2);
    let mut pieces: Vec<Vec<u8>> = vec![Vec::new(), Vec::new()];
    let mut seen = 0usize;
    let mut cb = |ev: &TokenEvent<'_>| {
        pieces[ev.sample].extend_from_slice(ev.piece);
        seen += 1;
        true
    };
    let r = g
        .solve(
            STORY,
            &params(2, 20),
            RolloutHooks {
                on_token: Some(&mut cb),
                cancel: None,
            },
        )
        .unwrap();
    for (s, sample) in r.samples.iter().enumerate() {
        assert_eq!(String::from_utf8_lossy(&pieces[s]), sample.text);
    }
    assert!(seen > 0);

    let mut count = 0;
    let mut stop_after_5 = |_ev: &TokenEvent<'_>| {
        count += 1;
        count < 5
    };
    let r = g
        .solve(
            STORY,
            &params(2, 200),
            RolloutHooks {
                on_token: Some(&mut stop_after_5),
                cancel: None,
            },
        )
        .unwrap();
    assert!(r.cancelled);
    assert!(r.tokens_generated <= 8);
}

#[test]
fn context_too_small_and_bad_params_are_errors() {
    let mut g = common::generator(256, 4);
    let e = g
        .solve(STORY, &params(4, 4000), RolloutHooks::default())
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ContextTooSmall);
    assert!(e.message().contains("n_seq_max 4"), "{}", e.message());
    let e = g
        .solve(STORY, &params(8, 8), RolloutHooks::default())
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let e = g
        .rollout(&[], &params(1, 8), RolloutHooks::default())
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let e = g
        .rollout(&[1, 999_999], &params(1, 8), RolloutHooks::default())
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    // The generator still works after errors.
    let r = g
        .solve(STORY, &params(1, 4), RolloutHooks::default())
        .unwrap();
    assert_eq!(r.samples.len(), 1);
}
