//! Reward values against hand-computed values from the formulas in DESIGN.md.

use crate::answer::VerdictReason;
use crate::reward::{
    accuracy_reward, cosine_reward, format_reward, length_rewards, score_batch, score_group,
    Completion, CosineConfig, LengthScope, LengthUnit, RewardConfig,
};

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn cosine_table() {
    let cfg = CosineConfig::default();
    // (length, correct, expected) with c = cos(π·min(1, L/30000));
    // correct 0.1 + 0.45(1+c), wrong −0.1 − 0.45(1+c)
    let c45 = std::f64::consts::FRAC_1_SQRT_2;
    let table = [
        (0, true, 1.0),
        (15_000, true, 0.55),
        (30_000, true, 0.1),
        (60_000, true, 0.1),
        (10_000, true, 0.775),
        (7_500, true, 0.1 + 0.45 * (1.0 + c45)),
        (0, false, -1.0),
        (15_000, false, -0.55),
        (30_000, false, -0.1),
        (90_000, false, -0.1),
        (10_000, false, -0.775),
        (20_000, false, -0.325),
        (7_500, false, -0.1 - 0.45 * (1.0 + c45)),
    ];
    for (len, ok, want) in table {
        let got = cosine_reward(len, ok, &cfg);
        assert!(
            near(got, want),
            "len={len} correct={ok}: got {got}, want {want}"
        );
    }
    let custom = CosineConfig {
        max_len: 100,
        ..CosineConfig::default()
    };
    assert!(near(cosine_reward(50, true, &custom), 0.55));
    let zero = CosineConfig {
        max_len: 0,
        ..CosineConfig::default()
    };
    assert!(cosine_reward(5, true, &zero).is_finite());
}

#[test]
fn length_table() {
    let table: Vec<(Vec<usize>, Vec<bool>, Vec<f64>)> = vec![
        (
            vec![100, 200, 300],
            vec![true, false, true],
            vec![0.5, 0.0, -0.5],
        ),
        (
            vec![100, 300, 200],
            vec![false, false, true],
            vec![0.0, -0.5, 0.0],
        ),
        (
            vec![100, 150, 300],
            vec![true, true, false],
            vec![0.5, 0.25, -0.5],
        ),
        (
            vec![100, 150, 300],
            vec![false, false, false],
            vec![0.0, 0.0, -0.5],
        ),
        (vec![7, 7, 7], vec![true, false, true], vec![0.0, 0.0, 0.0]),
        (vec![42], vec![true], vec![0.0]),
        (vec![], vec![], vec![]),
    ];
    for (lens, ok, want) in table {
        let got = length_rewards(&lens, &ok);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!(
                near(*g, *w),
                "lens={lens:?} ok={ok:?}: got {got:?}, want {want:?}"
            );
        }
    }
}

#[test]
fn format_table() {
    let table = [
        ("<think>so \\boxed{3} ok</think> \\boxed{3}", 1.0),
        ("<think>no box</think> \\boxed{3}", 0.0),
        ("\\boxed{3} but no think end", 0.0),
        ("<think>\\boxed{3</think>}", 0.0),
        ("<think>a</think>\\boxed{1}</think>", 0.0),
        ("\\boxed{\\frac{1}{2}}</think>", 1.0),
        ("", 0.0),
    ];
    for (text, want) in table {
        assert_eq!(format_reward(text), want, "{text:?}");
    }
}

fn group() -> Vec<Completion> {
    vec![
        Completion {
            text: "<think>x \\boxed{3}</think> \\boxed{3}".into(),
            num_tokens: 10_000,
        },
        Completion {
            text: "<think>hmm</think> \\boxed{4}".into(),
            num_tokens: 20_000,
        },
        Completion {
            text: "<think>ok</think> The final answer is 3.".into(),
            num_tokens: 30_000,
        },
    ]
}

#[test]
fn group_totals_match_hand_computation() {
    let cfg = RewardConfig {
        length_unit: LengthUnit::Tokens,
        ..RewardConfig::default()
    };
    let g = score_group("3", &group(), &cfg);
    // A: format 1, cosine p=1/3 → 0.775, λ = 0.5 (correct)      → 2.275
    // B: format 0, cosine wrong p=2/3 → −0.325, λ = 0 → min(0,0) → −0.325
    // C: format 0, cosine p=1 → 0.1, λ = −0.5 (correct)          → −0.4
    let want = [
        (1.0, 0.775, 0.5, 2.275, true),
        (0.0, -0.325, 0.0, -0.325, false),
        (0.0, 0.1, -0.5, -0.4, true),
    ];
    for (s, (f, c, l, t, ok)) in g.completions.iter().zip(want) {
        assert!(
            near(s.format, f) && near(s.cosine, c) && near(s.length, l) && near(s.total, t),
            "{s:?}"
        );
        assert_eq!(s.correct, ok);
        assert_eq!(s.accuracy, if ok { 1.0 } else { 0.0 });
    }
    assert_eq!(g.num_correct, 2);
    assert_eq!(g.num_gold_unparseable_used, 0);
    assert!(near(g.mean_total, (2.275 - 0.325 - 0.4) / 3.0));

    let cfg = RewardConfig::from_json(
        r#"{"length_unit":"tokens","weights":{"accuracy":1.0,"length":0.5}}"#,
    )
    .unwrap();
    let g = score_group("3", &group(), &cfg);
    let totals: Vec<f64> = g.completions.iter().map(|s| s.total).collect();
    let want = [1.0 + 0.775 + 0.25 + 1.0, -0.325, 0.1 - 0.25 + 1.0];
    for (t, w) in totals.iter().zip(want) {
        assert!(near(*t, w), "{totals:?}");
    }
}

#[test]
fn chars_unit_counts_unicode_scalars() {
    let cfg = RewardConfig::default();
    let c = Completion {
        text: "ππ\\boxed{1}".into(),
        num_tokens: 999,
    };
    let g = score_group("1", &[c], &cfg);
    assert_eq!(g.completions[0].length_value, 11);
}

#[test]
fn gold_unparseable_option_is_off_by_default_and_counted() {
    let cs = vec![Completion {
        text: "\\boxed{5}".into(),
        num_tokens: 1,
    }];
    let off = score_group("\\frac{", &cs, &RewardConfig::default());
    assert!(off.gold_unparseable);
    assert!(!off.completions[0].correct);
    assert_eq!(off.completions[0].reason, VerdictReason::GoldUnparseable);
    let cfg = RewardConfig {
        gold_unparseable_counts_correct: true,
        ..RewardConfig::default()
    };
    let on = score_group("\\frac{", &cs, &cfg);
    assert!(on.completions[0].correct && on.completions[0].gold_unparseable_used);
    assert_eq!(on.num_gold_unparseable_used, 1);
    // a parseable gold never uses the option
    let ok = score_group("5", &cs, &cfg);
    assert_eq!(ok.num_gold_unparseable_used, 0);
}

#[test]
fn batch_scope_normalises_over_all_completions() {
    let a = vec![Completion {
        text: "\\boxed{1}".into(),
        num_tokens: 100,
    }];
    let b = vec![Completion {
        text: "\\boxed{2}".into(),
        num_tokens: 300,
    }];
    let cfg = RewardConfig {
        length_unit: LengthUnit::Tokens,
        length_scope: LengthScope::Batch,
        ..RewardConfig::default()
    };
    let out = score_batch(&[("1", &a), ("2", &b)], &cfg);
    assert!(near(out[0].completions[0].length, 0.5));
    assert!(near(out[1].completions[0].length, -0.5));
    let per_group = RewardConfig {
        length_scope: LengthScope::Group,
        ..cfg
    };
    let out = score_batch(&[("1", &a), ("2", &b)], &per_group);
    assert!(near(out[0].completions[0].length, 0.0));
}

#[test]
fn config_json_is_strict() {
    assert_eq!(
        RewardConfig::from_json("{}").unwrap(),
        RewardConfig::default()
    );
    assert!(RewardConfig::from_json(r#"{"weight":{}}"#).is_err());
    assert!(RewardConfig::from_json(r#"{"weights":{"formatt":1}}"#).is_err());
    assert!(RewardConfig::from_json(r#"{"cosine":{"max_len":0}}"#).is_err());
    assert!(RewardConfig::from_json(r#"{"length_unit":"bytes"}"#).is_err());
    let c = RewardConfig::from_json(
        r#"{"verify":{"rel_tol":1e-6,"aimo":true},"gold_unparseable_counts_correct":true}"#,
    )
    .unwrap();
    assert!(c.verify.aimo && c.gold_unparseable_counts_correct);
    let d = CosineConfig::default();
    assert_eq!(
        (
            d.min_value_wrong,
            d.max_value_wrong,
            d.min_value_correct,
            d.max_value_correct,
            d.max_len
        ),
        (-1.0, -0.1, 0.1, 1.0, 30_000)
    );
}

#[test]
fn accuracy_table() {
    let cfg = RewardConfig::default();
    let table = [
        ("3", "<think>x</think> \\boxed{3}", 1.0),
        ("3", "<think>x</think> \\boxed{4}", 0.0),
        ("3", "no answer at all", 0.0),
        ("\\frac{1}{2}", "\\boxed{0.5}", 1.0),
        ("\\frac{", "\\boxed{0.5}", 0.0),
    ];
    for (gold, text, want) in table {
        assert_eq!(accuracy_reward(gold, text, &cfg), want, "{gold} / {text}");
    }
    let lenient = RewardConfig {
        gold_unparseable_counts_correct: true,
        ..RewardConfig::default()
    };
    assert_eq!(accuracy_reward("\\frac{", "\\boxed{0.5}", &lenient), 1.0);
    assert_eq!(accuracy_reward("\\frac{", "no answer", &lenient), 1.0);
    assert_eq!(accuracy_reward("", "\\boxed{1}", &lenient), 1.0);
    assert_eq!(accuracy_reward("3", "no answer", &lenient), 0.0);
}

#[test]
fn length_only_correct_leaves_wrong_answers_at_zero() {
    let mut comps = group();
    comps[1].num_tokens = 40_000; // the wrong answer is now the longest: λ = −0.5
    let paper = RewardConfig {
        length_unit: LengthUnit::Tokens,
        ..RewardConfig::default()
    };
    let only = RewardConfig {
        length_only_correct: true,
        ..paper.clone()
    };
    let a = score_group("3", &comps, &paper);
    let b = score_group("3", &comps, &only);
    assert!(
        near(a.completions[1].length, -0.5),
        "{:?}",
        a.completions[1]
    );
    assert!(near(b.completions[1].length, 0.0), "{:?}", b.completions[1]);
    for i in [0, 2] {
        assert!(near(a.completions[i].length, b.completions[i].length));
        assert!(a.completions[i].correct);
    }
    assert!(near(b.completions[1].total - a.completions[1].total, 0.5));
}

#[test]
fn shorter_better_table() {
    use crate::reward::{shorter_better_rewards, shorter_better_target, ShorterBetterConfig};
    let cfg = ShorterBetterConfig { beta: 0.01 };
    // Target: the shortest correct length (80); r = −0.01·|L − 80|.
    let got = shorter_better_rewards(&[100, 80, 120, 60], &[true, true, false, false], &cfg);
    for (g, w) in got.iter().zip([-0.2, 0.0, -0.4, -0.2]) {
        assert!(near(*g, w), "{got:?}");
    }
    // No correct completion: the target is the mean length (20).
    let got = shorter_better_rewards(&[10, 20, 30], &[false, false, false], &cfg);
    for (g, w) in got.iter().zip([-0.1, 0.0, -0.1]) {
        assert!(near(*g, w), "{got:?}");
    }
    // Missing correctness entries count as wrong; the paper's β by default.
    assert_eq!(shorter_better_target(&[5, 9], &[false, true]), Some(9.0));
    assert_eq!(shorter_better_target(&[5, 9], &[]), Some(7.0));
    assert_eq!(shorter_better_target(&[], &[]), None);
    let d = shorter_better_rewards(
        &[1000, 500],
        &[false, true],
        &ShorterBetterConfig::default(),
    );
    assert!(near(d[0], -0.5) && near(d[1], 0.0), "{d:?}");
}

#[test]
fn laser_targets_table() {
    use crate::reward::{laser_bucket, laser_rewards, laser_targets, LaserConfig};
    let cfg = LaserConfig::default();
    let g0 = (vec![50, 60, 70, 80], vec![true, true, true, false]); // 3/4 correct: easy
    let g1 = (vec![40, 90, 100, 30], vec![true, false, true, true]); // easy
    let g2 = (vec![200, 150], vec![false, true]); // 1/2: medium
    let g3 = (vec![300, 310, 320], vec![false, false, false]); // hard, nothing correct
    let groups: Vec<(&[usize], &[bool])> = [&g0, &g1, &g2, &g3]
        .iter()
        .map(|g| (g.0.as_slice(), g.1.as_slice()))
        .collect();
    assert_eq!(
        groups
            .iter()
            .map(|g| laser_bucket(g.1, &cfg))
            .collect::<Vec<_>>(),
        [2, 2, 1, 0]
    );
    // Easy: 2 groups need 2 correct answers within L; correct lengths 30 40 50 60 70 100 → 40.
    // Medium: one group, one correct (150). Hard: no correct answer → no target.
    let t = laser_targets(&groups, &cfg);
    assert_eq!(t, [Some(40), Some(40), Some(150), None]);
    assert_eq!(laser_rewards(&g0.0, &g0.1, t[0]), [0.0, 0.0, 0.0, 0.0]);
    assert_eq!(laser_rewards(&g1.0, &g1.1, t[1]), [1.0, 0.0, 0.0, 1.0]);
    assert_eq!(laser_rewards(&g2.0, &g2.1, t[2]), [0.0, 1.0]);
    assert_eq!(laser_rewards(&g3.0, &g3.1, t[3]), [0.0, 0.0, 0.0]);
    // Three expected correct answers per easy group: the 6th shortest correct length (100).
    let three = LaserConfig {
        expected_correct: 3.0,
        ..cfg.clone()
    };
    assert_eq!(laser_targets(&groups, &three)[0], Some(100));
    assert_eq!(laser_rewards(&g0.0, &g0.1, Some(100)), [1.0, 1.0, 1.0, 0.0]);
    // Unreachable (8 needed, 6 correct): the longest correct length.
    let four = LaserConfig {
        expected_correct: 4.0,
        ..cfg
    };
    assert_eq!(laser_targets(&groups, &four)[1], Some(100));
}

#[test]
fn overlong_table() {
    use crate::reward::{overlong_penalty, OverlongConfig};
    let cfg = OverlongConfig {
        max_len: 100,
        cache: 20,
    };
    // 0 up to 80, then (80 − L)/20 down to −1 at 100, −1 beyond.
    for (len, want) in [
        (0, 0.0),
        (80, 0.0),
        (81, -0.05),
        (90, -0.5),
        (99, -0.95),
        (100, -1.0),
        (101, -1.0),
        (5000, -1.0),
    ] {
        assert!(near(overlong_penalty(len, &cfg), want), "len {len}");
    }
    let no_ramp = OverlongConfig {
        max_len: 100,
        cache: 0,
    };
    assert_eq!(overlong_penalty(100, &no_ramp), 0.0);
    assert_eq!(overlong_penalty(101, &no_ramp), -1.0);
    // DAPO's own values: 20480 with a 4096 ramp.
    assert!(near(
        overlong_penalty(18_432, &OverlongConfig::default()),
        -0.5
    ));
}

/// The new terms enter the total with their weights; Laser targets come from the group alone
/// in `score_group` and from every group in `score_batch`.
#[test]
fn new_length_terms_in_totals() {
    use crate::reward::RewardWeights;
    let c = |text: &str, n: usize| Completion {
        text: text.into(),
        num_tokens: n,
    };
    let cfg = RewardConfig {
        length_unit: LengthUnit::Tokens,
        format_requires_think: false,
        weights: RewardWeights {
            format: 0.0,
            cosine: 0.0,
            length: 0.0,
            accuracy: 1.0,
            shorter_better: 1.0,
            laser: 0.5,
            overlong: 1.0,
        },
        shorter_better: crate::reward::ShorterBetterConfig { beta: 0.01 },
        overlong: crate::reward::OverlongConfig {
            max_len: 100,
            cache: 20,
        },
        ..RewardConfig::default()
    };
    let a = vec![
        c("\\boxed{3}", 40),
        c("\\boxed{3}", 90),
        c("\\boxed{4}", 30),
    ];
    let g = score_group("3", &a, &cfg);
    // Group: 2/3 correct (medium), target = shortest correct = 40.
    // A: 1 + 0 + 0.5·1 + 0 = 1.5; B: 1 − 0.5 + 0 − 0.5 = 0.0; C: 0 − 0.1 + 0 + 0 = −0.1.
    assert_eq!(g.laser_target, Some(40));
    for (s, want) in g.completions.iter().zip([1.5, 0.0, -0.1]) {
        assert!(near(s.total, want), "{:?}", g.completions);
    }
    // Batched with a second medium group whose correct answers are short: the medium bucket
    // needs 2 correct answers within L over 2 groups → L = 20, so A loses its bonus.
    let b = [
        c("\\boxed{3}", 10),
        c("\\boxed{3}", 20),
        c("\\boxed{5}", 30),
    ];
    let both = score_batch(&[("3", &a[..]), ("3", &b[..])], &cfg);
    assert_eq!(both[0].laser_target, Some(20));
    assert!(near(both[0].completions[0].total, 1.0));
    assert!(near(both[1].completions[0].laser, 1.0));
}
