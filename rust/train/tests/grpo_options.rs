//! The GRPO options beyond the paper's loss (sequence-level importance sampling (GSPO),
//! masking truncated completions, the top-entropy quantile) and the step diagnostics (clip
//! ratios, entropy, the sampler gap) against hand-computed values; the trainer's entropies
//! against a brute-force sum over the vocabulary.

use super::support as common;

use std::sync::Arc;

use crate::train::loss::grpo::mask_len;
use crate::train::loss::{
    grpo_loss_from_inputs, quantile, GrpoConfig, GrpoInputs, IsLevel, LossType,
};
use crate::train::model::{SeqRef, Transformer};
use crate::train::rng::Rng;
use crate::train::weights::{write_random_gguf, Arch, GgufModel, RandomModelSpec};

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6 * (1.0 + b.abs())
}

fn inputs<'a>(
    logp: &'a [Vec<f32>],
    old: Option<&'a [Vec<f32>]>,
    adv: &'a [f32],
    mask: &'a [usize],
) -> GrpoInputs<'a> {
    GrpoInputs {
        logp,
        old,
        refp: None,
        entropy: None,
        rollout: None,
        adv,
        mask,
    }
}

fn no_kl() -> GrpoConfig {
    GrpoConfig {
        beta: 0.0,
        epsilon_high: Some(0.28),
        ..Default::default()
    }
}

/// GSPO: one ratio `s = exp(mean log-ratio)` per sequence, clipped as a whole; its gradient
/// is spread evenly over the sequence's tokens (∂ log s / ∂ logp_t = 1/m).
#[test]
fn sequence_level_ratio_values() {
    let lp = vec![vec![-1.0f32, -2.0], vec![-0.5, -0.5, -0.5]];
    // Log-ratios: sequence 0 → 0.1, 0.2 (mean 0.15); sequence 1 → 0.3, 0.5, 0.4 (mean 0.4).
    let old = vec![vec![-1.1f32, -2.2], vec![-0.8, -1.0, -0.9]];
    let cfg = GrpoConfig {
        importance_sampling_level: IsLevel::Sequence,
        ..no_kl()
    };
    let (adv, mask) = ([1.0f32, 1.0], [2usize, 3]);
    let (st, g) = grpo_loss_from_inputs(&inputs(&lp, Some(&old), &adv, &mask), &cfg).unwrap();
    let s0 = 0.15f64.exp();
    // Sequence 1: s = e^0.4 ≈ 1.49 > 1.28 with A > 0 → clipped at 1.28, no gradient.
    // GRPO normalisation: mean over tokens, then over the 2 sequences.
    let want = -(s0 + 1.28) / 2.0;
    assert!(near(st.loss, want), "loss {} want {want}", st.loss);
    for t in 0..2 {
        // ∂/∂logp_t of −s0/2 = −(s0/2)·(1/2).
        assert!(near(g[0][t] as f64, -s0 / 4.0), "{g:?}");
    }
    assert!(g[1].iter().all(|&v| v == 0.0), "{g:?}");
    assert!(near(st.clip_ratio, 3.0 / 5.0));
    assert!(near(st.clip_ratio_high, 3.0 / 5.0) && st.clip_ratio_low == 0.0);
    assert!(near(st.clip_ratio_region, 3.0 / 5.0));

    // Token level on the same numbers: each token its own ratio; 0.3, 0.5 and 0.4 all exceed
    // log 1.28 ≈ 0.247 → clipped; 0.1 and 0.2 are not.
    let tok = GrpoConfig {
        importance_sampling_level: IsLevel::Token,
        ..cfg.clone()
    };
    let (st, g) = grpo_loss_from_inputs(&inputs(&lp, Some(&old), &adv, &mask), &tok).unwrap();
    let want = -((0.1f64.exp() + 0.2f64.exp()) / 2.0 + 1.28) / 2.0;
    assert!(near(st.loss, want), "loss {} want {want}", st.loss);
    assert!(near(g[0][0] as f64, -0.1f64.exp() / 4.0));
    assert!(near(g[0][1] as f64, -0.2f64.exp() / 4.0));

    // A negative advantage keeps the unclipped (larger) ratio: min(sA, clip(s)A) = sA.
    let (st, g) =
        grpo_loss_from_inputs(&inputs(&lp, Some(&old), &[0.0, -1.0], &mask), &cfg).unwrap();
    let s1 = 0.4f64.exp();
    assert!(near(st.loss, s1 / 2.0), "loss {}", st.loss);
    for t in 0..3 {
        assert!(near(g[1][t] as f64, s1 / 2.0 / 3.0), "{g:?}");
    }
    assert_eq!(st.clip_ratio_region, 0.0);
    // On-policy (no old log-probs): s = 1 and the gradient is A/m per token, as token level.
    let (st, g) = grpo_loss_from_inputs(&inputs(&lp, None, &adv, &mask), &cfg).unwrap();
    assert!(near(st.loss, -1.0));
    assert!(near(g[1][2] as f64, -1.0 / 6.0));
}

/// TRL's clip diagnostics: low = ρ < 1 − ε with A < 0, high = ρ > 1 + ε_high with A > 0.
#[test]
fn clip_ratios_low_high_region() {
    let lp = vec![vec![0.0f32; 4], vec![0.0; 4]];
    // Ratios e^{−x}: e^{-0.5} ≈ 0.61 (< 0.8), e^{0.3} ≈ 1.35 (> 1.28), e^{0.1}, e^{−0.1}.
    let row = vec![0.5f32, -0.3, -0.1, 0.1];
    let old = vec![row.clone(), row];
    let (adv, mask) = ([-1.0f32, 1.0], [4usize, 4]);
    let (st, _) = grpo_loss_from_inputs(&inputs(&lp, Some(&old), &adv, &mask), &no_kl()).unwrap();
    // Sequence 0 (A < 0): token 0 is low-clipped; token 1 (ρ > hi, A < 0) keeps ρA (no clip).
    // Sequence 1 (A > 0): token 1 is high-clipped; token 0 (ρ < lo, A > 0) keeps ρA.
    assert!(near(st.clip_ratio_low, 1.0 / 8.0));
    assert!(near(st.clip_ratio_high, 1.0 / 8.0));
    assert!(near(st.clip_ratio_region, 2.0 / 8.0));
    assert!(near(st.clip_ratio, 2.0 / 8.0));
    // Masked tokens count in neither numerator nor denominator.
    let (st, _) = grpo_loss_from_inputs(&inputs(&lp, Some(&old), &adv, &[1, 0]), &no_kl()).unwrap();
    assert!(near(st.clip_ratio_low, 1.0) && st.clip_ratio_high == 0.0);
}

/// `top_entropy_quantile = q` keeps the policy term on tokens whose entropy is at least the
/// `1 − q` quantile (linear interpolation) of the call's loss tokens; KL stays everywhere.
#[test]
fn top_entropy_quantile_values() {
    assert_eq!(quantile(&[], 0.5), None);
    assert!(near(
        quantile(&[0.9, 0.1, 0.5, 0.3, 0.7], 0.6).unwrap() as f64,
        0.58
    ));
    assert_eq!(quantile(&[2.0, 1.0], 0.0), Some(1.0));
    assert_eq!(quantile(&[2.0, 1.0], 1.0), Some(2.0));

    let lp = vec![vec![-1.0f32, -2.0, -0.5, -3.0], vec![-0.1, -0.2]];
    // The last entropy of sequence 0 is past its mask: it takes no part in the quantile.
    let ent = vec![vec![0.1f32, 0.5, 0.9, 100.0], vec![0.3, 0.7]];
    let refp = vec![vec![-1.5f32, -2.0, -0.5, -3.0], vec![-0.1, 0.3]];
    let (adv, mask) = ([1.0f32, -2.0], [3usize, 2]);
    let cfg = GrpoConfig {
        top_entropy_quantile: 0.4,
        ..no_kl()
    };
    let x = GrpoInputs {
        entropy: Some(&ent),
        ..inputs(&lp, None, &adv, &mask)
    };
    let (st, g) = grpo_loss_from_inputs(&x, &cfg).unwrap();
    // Threshold: the 0.6 quantile of {0.1, 0.5, 0.9, 0.3, 0.7} = 0.58: tokens (0,2), (1,1).
    // Loss: −(1·1)/(2·3) + (2·1)/(2·2) = −1/6 + 1/2.
    assert!(near(st.loss, -1.0 / 6.0 + 0.5), "loss {}", st.loss);
    assert_eq!(g[0][..2], [0.0, 0.0]);
    assert!(near(g[0][2] as f64, -1.0 / 6.0));
    assert_eq!(g[1][0], 0.0);
    assert!(near(g[1][1] as f64, 0.5));
    assert!(near(st.entropy_kept, 2.0 / 5.0));
    assert!(near(st.mean_entropy.unwrap(), 2.5 / 5.0));

    // With β > 0 the KL term stays on every loss token: k3(d) = e^d − d − 1, d = ref − logp,
    // ∂/∂logp = β(1 − e^d)·norm.
    let kcfg = GrpoConfig {
        beta: 0.5,
        ..cfg.clone()
    };
    let x = GrpoInputs {
        refp: Some(&refp),
        ..x
    };
    let (st, g) = grpo_loss_from_inputs(&x, &kcfg).unwrap();
    let k = |d: f64| d.exp() - d - 1.0;
    let (d0, d1) = (-0.5f64, 0.5f64);
    let want = -1.0 / 6.0 + 0.5 + 0.5 * (k(d0) / 6.0 + k(d1) / 4.0);
    assert!(near(st.loss, want), "loss {} want {want}", st.loss);
    assert!(near(g[0][0] as f64, 0.5 * (1.0 - d0.exp()) / 6.0), "{g:?}");
    // Token (1,0) has d = 0 (no KL gradient) and no policy term; (1,1) has both.
    assert!(g[1][0].abs() < 1e-9, "{g:?}");
    assert!(
        near(g[1][1] as f64, 0.5 + 0.5 * (1.0 - d1.exp()) / 4.0),
        "{g:?}"
    );

    // q = 1 keeps everything and needs no entropies; q < 1 without them is an error.
    let (st, _) = grpo_loss_from_inputs(&inputs(&lp, None, &adv, &mask), &no_kl()).unwrap();
    assert!(near(st.entropy_kept, 1.0) && st.mean_entropy.is_none());
    assert!(grpo_loss_from_inputs(&inputs(&lp, None, &adv, &mask), &cfg).is_err());
    for bad in [0.0f32, -0.5, 1.5, f32::NAN] {
        let c = GrpoConfig {
            top_entropy_quantile: bad,
            ..no_kl()
        };
        assert!(grpo_loss_from_inputs(&x, &c).is_err(), "{bad}");
    }
}

/// The loss mask: through the first EOS; nothing of a truncated completion when masked.
#[test]
fn truncated_completions_masked() {
    let c = [5u32, 7, 2, 9, 2];
    assert_eq!(mask_len(&c, Some(2), false, false), 3);
    assert_eq!(mask_len(&c, Some(2), false, true), 3);
    assert_eq!(mask_len(&c, None, true, false), 5);
    assert_eq!(mask_len(&c, Some(2), true, true), 0);
    assert_eq!(mask_len(&c, Some(4), false, false), 5);

    // A masked sequence adds nothing to any normalisation but the GRPO mean over sequences
    // (TRL: its per-sequence mean is 0).
    let lp = vec![vec![-1.0f32, -2.0], vec![-0.5, -0.5, -0.5]];
    let adv = [1.0f32, 3.0];
    let (st, g) = grpo_loss_from_inputs(&inputs(&lp, None, &adv, &[2, 0]), &no_kl()).unwrap();
    assert!(near(st.loss, -0.5) && st.n_tokens == 2);
    assert!(g[1].iter().all(|&v| v == 0.0));
    let dapo = GrpoConfig {
        loss_type: LossType::Dapo,
        ..no_kl()
    };
    let (st, _) = grpo_loss_from_inputs(&inputs(&lp, None, &adv, &[2, 0]), &dapo).unwrap();
    assert!(near(st.loss, -1.0));
}

/// Mean |sampler log-prob − trainer log-prob| over loss tokens with sampler log-probs.
#[test]
fn rollout_logprob_gap_values() {
    let lp = vec![vec![-1.0f32, -2.0, -0.5], vec![-0.1, -0.2]];
    let roll = vec![vec![-1.5f32, -2.0, -0.4], vec![]];
    let (adv, mask) = ([1.0f32, -1.0], [2usize, 2]);
    let x = GrpoInputs {
        rollout: Some(&roll),
        ..inputs(&lp, None, &adv, &mask)
    };
    let (st, _) = grpo_loss_from_inputs(&x, &no_kl()).unwrap();
    // Tokens (0,0) and (0,1) only: (0.5 + 0)/2; (0,2) is past the mask, sequence 1 has none.
    assert!(near(st.rollout_logprob_gap.unwrap(), 0.25));
    let (st, _) = grpo_loss_from_inputs(&inputs(&lp, None, &adv, &mask), &no_kl()).unwrap();
    assert_eq!(st.rollout_logprob_gap, None);
}

/// The entropies the trainer hands to the loss are `−Σ_v p_v log p_v` of each scored
/// position's distribution: checked against the log-probs of every vocabulary token there.
#[test]
fn trainer_entropies_match_the_vocabulary_sum() {
    for arch in [Arch::Llama, Arch::Gemma3] {
        let spec = RandomModelSpec {
            seed: 8,
            init_std: Some(0.5),
            ..RandomModelSpec::tiny(arch)
        };
        let p = common::scratch_dir().join(format!(
            "entropy-{}-{:?}.gguf",
            arch.name(),
            std::thread::current().id()
        ));
        write_random_gguf(&spec, &p).unwrap();
        let tf = Transformer::new(Arc::new(GgufModel::open(&p).unwrap()), 2).unwrap();
        let v = tf.model().hp.n_vocab;
        let mut rng = Rng::new(3);
        let toks: Vec<u32> = (0..9).map(|_| (rng.next_u64() % v as u64) as u32).collect();
        let seq = SeqRef {
            tokens: &toks,
            score_from: 4,
        };
        let lora = crate::train::lora::LoraWeights::new(
            &crate::train::lora::LoraConfig {
                rank: 2,
                alpha: 4.0,
                targets: crate::train::lora::LoraTarget::ALL.to_vec(),
                seed: 1,
            },
            tf.model(),
        )
        .unwrap();
        let mut grads = lora.zeros_like();
        let mut ent = Vec::new();
        tf.forward_backward_scored(
            &lora,
            &[seq],
            true,
            |lp, e| {
                ent = e.to_vec();
                Ok((0.0, lp.iter().map(|s| vec![0.0; s.len()]).collect()))
            },
            &mut grads,
        )
        .unwrap();
        assert_eq!(ent.len(), 1);
        assert_eq!(ent[0].len(), toks.len() - 4);
        for (j, &h) in ent[0].iter().enumerate() {
            // Position 4 + j predicts token 4 + j from the prefix before it.
            let prefix = &toks[..4 + j];
            let cands: Vec<Vec<u32>> = (0..v as u32).map(|c| [prefix, &[c][..]].concat()).collect();
            let refs: Vec<SeqRef> = cands
                .iter()
                .map(|c| SeqRef {
                    tokens: c,
                    score_from: c.len() - 1,
                })
                .collect();
            let lps = tf.logprobs(Some(&lora), &refs).unwrap();
            let (mut want, mut mass) = (0f64, 0f64);
            for l in lps.iter().map(|l| l[0] as f64) {
                want -= l.exp() * l;
                mass += l.exp();
            }
            assert!((mass - 1.0).abs() < 1e-4, "probabilities sum to {mass}");
            assert!(
                (h as f64 - want).abs() < 1e-4 * (1.0 + want),
                "{arch:?} position {j}: entropy {h} vs {want}"
            );
            assert!(
                want > 0.1,
                "a degenerate distribution tests nothing: {want}"
            );
        }
    }
}
