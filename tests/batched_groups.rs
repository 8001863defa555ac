//! Many groups in one decode loop (`Generator::rollout_many` / `solve_many`), on the real
//! default model: the same answers as one group at a time, queueing when sequences run out,
//! per-group hooks and errors, and a cancel of the whole loop.

mod common;

use fmr::generate::{GroupRequest, RolloutHooks, RolloutParams, TokenEvent};
use fmr::ErrorCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const PROBLEMS: [&str; 6] = [
    "What is 12 + 30?",
    "Tom has 5 apples and buys 7 more. How many apples does he have?",
    "What is 9 times 8?",
    "A box holds 24 pens. How many pens are in 3 boxes?",
    "What is 100 minus 37?",
    "Anna reads 15 pages a day. How many pages does she read in 4 days?",
];

fn greedy(n: usize, max_tokens: usize) -> RolloutParams {
    let mut p = RolloutParams {
        n_samples: n,
        max_tokens,
        ..Default::default()
    };
    p.sampling.temperature = 0.0;
    p
}

#[test]
fn batched_groups_give_the_answers_of_one_group_at_a_time_under_greedy_decoding() {
    let mut g = common::generator(8 * 256, 8);
    let p = greedy(2, 40);
    let alone: Vec<_> = PROBLEMS
        .iter()
        .map(|q| g.solve(q, &p, RolloutHooks::default()).unwrap())
        .collect();
    // 12 samples over 8 sequences: the last groups wait for the first ones to finish.
    let batched = g.solve_many(&PROBLEMS, &p, 0, None).unwrap();
    assert_eq!(batched.len(), PROBLEMS.len());
    for (i, (a, b)) in alone.iter().zip(&batched).enumerate() {
        let b = b.as_ref().unwrap();
        assert_eq!(a.voted_answer, b.voted_answer, "problem {i}");
        for (sa, sb) in a.samples.iter().zip(&b.samples) {
            assert_eq!(sa.text, sb.text, "problem {i}");
            assert_eq!(sa.finish_reason, sb.finish_reason, "problem {i}");
        }
    }
    // With 2 sequences in flight, one group at a time: the same again.
    let one_by_one = g.solve_many(&PROBLEMS[..3], &p, 2, None).unwrap();
    for (a, b) in alone.iter().zip(&one_by_one) {
        assert_eq!(a.samples[0].text, b.as_ref().unwrap().samples[0].text);
    }
}

#[test]
fn sampled_groups_keep_their_own_seeds_and_hooks() {
    let mut g = common::generator(8 * 256, 8);
    let mut p = RolloutParams {
        n_samples: 3,
        max_tokens: 24,
        ..Default::default()
    };
    p.sampling.seed = 77;
    let alone = g.solve(PROBLEMS[0], &p, RolloutHooks::default()).unwrap();

    let mut streamed = vec![Vec::<u8>::new(); 3];
    let mut cb = |ev: &TokenEvent<'_>| {
        streamed[ev.sample].extend_from_slice(ev.piece);
        true
    };
    let cancel_second = Arc::new(AtomicBool::new(true));
    let model = g.context().model().clone();
    let tok = |q: &str| p.prompt.tokenize(&model, q).unwrap();
    let mut bad = p.clone();
    bad.sampling.top_p = 0.0;
    let requests = vec![
        GroupRequest {
            prompt: tok(PROBLEMS[0]),
            params: p.clone(),
            hooks: RolloutHooks {
                on_token: Some(&mut cb),
                cancel: None,
            },
        },
        GroupRequest {
            prompt: tok(PROBLEMS[1]),
            params: p.clone(),
            hooks: RolloutHooks {
                on_token: None,
                cancel: Some(cancel_second),
            },
        },
        GroupRequest {
            prompt: tok(PROBLEMS[2]),
            params: bad,
            hooks: RolloutHooks::default(),
        },
        GroupRequest {
            prompt: tok(PROBLEMS[3]),
            params: p.clone(),
            hooks: RolloutHooks::default(),
        },
    ];
    let mut results: Vec<Option<fmr::Result<fmr::generate::GroupResult>>> =
        vec![None, None, None, None];
    let mut order = Vec::new();
    g.rollout_many(requests, 6, None, &mut |i, r| {
        order.push(i);
        results[i] = Some(r);
    })
    .unwrap();
    assert_eq!(order.len(), 4, "every request reports once: {order:?}");
    let first = results[0].take().unwrap().unwrap();
    // Same seeds, same samples as alone (sampling is per group; batching changes nothing
    // beyond floating-point noise, which these short texts do not reach).
    for (a, b) in alone.samples.iter().zip(&first.samples) {
        assert_eq!(a.text, b.text);
    }
    for (s, sample) in first.samples.iter().enumerate() {
        assert_eq!(
            String::from_utf8_lossy(&streamed[s]),
            sample.text,
            "stream of sample {s}"
        );
    }
    let second = results[1].take().unwrap().unwrap();
    assert!(second.cancelled, "the second group's own flag cancels it");
    assert_eq!(second.tokens_generated, 0);
    let third = results[2].take().unwrap().unwrap_err();
    assert_eq!(third.code(), ErrorCode::InvalidArgument, "{third}");
    let fourth = results[3].take().unwrap().unwrap();
    assert!(!fourth.cancelled && fourth.tokens_generated > 0);
}

#[test]
fn cancelling_the_loop_ends_running_groups_and_skips_waiting_ones() {
    let mut g = common::generator(4 * 512, 4);
    let p = RolloutParams {
        n_samples: 2,
        max_tokens: 400,
        ignore_eos: true,
        ..Default::default()
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let c2 = cancel.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        c2.store(true, Ordering::Relaxed);
    });
    let results = g.solve_many(&PROBLEMS, &p, 4, Some(cancel)).unwrap();
    stopper.join().unwrap();
    let (mut started, mut never_started) = (0, 0);
    for r in &results {
        let r = r.as_ref().unwrap();
        assert!(r.cancelled);
        assert_eq!(r.samples.len(), 2);
        if r.samples.iter().all(|s| s.tokens.is_empty()) && r.wall_seconds == 0.0 {
            never_started += 1;
        } else {
            started += 1;
        }
    }
    assert_eq!(started, 2, "two groups of two fill the four sequences");
    assert_eq!(never_started, PROBLEMS.len() - 2);
}
