//! LoRA gradients of the GRPO and SFT losses vs central finite differences (f32 model,
//! f64 loss accumulation) on small random models of both architectures.

use super::support as common;

use std::sync::Arc;

use crate::train::lora::{LoraConfig, LoraTarget, LoraWeights};
use crate::train::loss::{
    grpo_loss_and_grad, grpo_loss_from_inputs, sft_loss_and_grad, sft_loss_from_logprobs,
    Advantages, GrpoBatch, GrpoConfig, GrpoInputs, GrpoSequence, IsLevel, LossType, SftConfig,
    SftExample,
};
use crate::train::model::{SeqRef, Transformer};
use crate::train::rng::Rng;
use crate::train::weights::{write_random_gguf, Arch, GgufModel, RandomModelSpec};

fn tiny(arch: Arch) -> Transformer {
    let spec = RandomModelSpec {
        seed: 21,
        init_std: Some(0.3),
        ..RandomModelSpec::tiny(arch)
    };
    // Tests run in parallel: each writes its own file.
    let p = common::scratch_dir().join(format!(
        "tiny-{}-{:?}.gguf",
        arch.name(),
        std::thread::current().id()
    ));
    write_random_gguf(&spec, &p).unwrap();
    Transformer::new(Arc::new(GgufModel::open(&p).unwrap()), 2).unwrap()
}

fn lora(tf: &Transformer) -> LoraWeights {
    let cfg = LoraConfig {
        rank: 3,
        alpha: 6.0,
        targets: LoraTarget::ALL.to_vec(),
        seed: 4,
    };
    let mut w = LoraWeights::new(&cfg, tf.model()).unwrap();
    let mut rng = Rng::new(99);
    for (i, p) in w.params_mut().iter_mut().enumerate() {
        if i % 2 == 1 {
            p.iter_mut().for_each(|v| *v = 0.3 * rng.normal());
        }
    }
    w
}

fn toks(rng: &mut Rng, n: usize, v: usize) -> Vec<u32> {
    (0..n).map(|_| (rng.next_u64() % v as u64) as u32).collect()
}

/// Central difference of `loss` at `w` along `dir` with Richardson extrapolation (steps h, h/2),
/// which cancels the O(h²) truncation error.
fn fd(w: &LoraWeights, dir: &LoraWeights, h: f32, loss: &dyn Fn(&LoraWeights) -> f64) -> f64 {
    let central = |h: f32| {
        let mut plus = w.clone();
        plus.add_scaled(dir, h).unwrap();
        let mut minus = w.clone();
        minus.add_scaled(dir, -h).unwrap();
        (loss(&plus) - loss(&minus)) / (2.0 * h as f64)
    };
    (4.0 * central(h / 2.0) - central(h)) / 3.0
}

/// Checks `grads` against central differences of `loss` along random directions and on the
/// largest coordinates. Returns the worst relative error.
fn check(
    name: &str,
    w: &LoraWeights,
    grads: &LoraWeights,
    loss: &dyn Fn(&LoraWeights) -> f64,
) -> f64 {
    let h: f32 = std::env::var("GC_H")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1e-2);
    let mut worst = 0f64;
    let mut rng = Rng::new(5);
    // Random directions (unit norm).
    for _ in 0..3 {
        let mut dir = w.zeros_like();
        dir.params_mut()
            .iter_mut()
            .flatten()
            .for_each(|v| *v = rng.normal());
        let nrm = dir.norm() as f32;
        dir.scale(1.0 / nrm);
        let analytic: f64 = grads
            .params()
            .iter()
            .flatten()
            .zip(dir.params().iter().flatten())
            .map(|(&g, &d)| g as f64 * d as f64)
            .sum();
        let fd = fd(w, &dir, h, loss);
        let rel = (analytic - fd).abs() / analytic.abs().max(fd.abs()).max(1e-8);
        eprintln!("{name}: direction: analytic {analytic:.6e} fd {fd:.6e} rel {rel:.2e}");
        worst = worst.max(rel);
    }
    // Largest gradient coordinates (A and B tensors).
    let mut coords: Vec<(usize, usize, f32)> = Vec::new();
    for (ti, p) in grads.params().iter().enumerate() {
        for (j, &g) in p.iter().enumerate() {
            coords.push((ti, j, g));
        }
    }
    coords.sort_by(|a, b| b.2.abs().total_cmp(&a.2.abs()));
    for &(ti, j, g) in coords.iter().take(4) {
        let mut dir = w.zeros_like();
        dir.params_mut()[ti][j] = 1.0;
        // Single coordinates move log-probs faster; a smaller step keeps clear of clip kinks.
        let fd = fd(w, &dir, h / 10.0, loss);
        let rel = (g as f64 - fd).abs() / (g as f64).abs().max(fd.abs()).max(1e-8);
        eprintln!("{name}: coord tensor {ti} [{j}]: analytic {g:.6e} fd {fd:.6e} rel {rel:.2e}");
        worst = worst.max(rel);
    }
    worst
}

fn grpo_case(arch: Arch, loss_type: LossType) {
    grpo_case_with(arch, loss_type, "", |_| {});
}

/// The GRPO gradient check with `adjust` applied to the loss options: the analytic gradient
/// of [`grpo_loss_and_grad`] (with the model's own entropies) against finite differences of
/// [`grpo_loss_from_inputs`] on recomputed log-probs, the entropies held at their value at
/// the expansion point (they carry no gradient, as in TRL). Sequence 2 is marked truncated.
fn grpo_case_with(arch: Arch, loss_type: LossType, tag: &str, adjust: fn(&mut GrpoConfig)) {
    let tf = tiny(arch);
    let w = lora(&tf);
    let v = tf.model().hp.n_vocab;
    let mut rng = Rng::new(17);
    let mut seqs = Vec::new();
    for (pl, cl) in [(5usize, 9usize), (3, 14), (7, 6), (4, 11)] {
        seqs.push(GrpoSequence {
            prompt: toks(&mut rng, pl, v),
            completion: toks(&mut rng, cl, v),
            ..Default::default()
        });
    }
    seqs[2].truncated = true;
    // Old log-probs: current ones perturbed so some tokens are clipped.
    let refs_tokens: Vec<Vec<u32>> = seqs
        .iter()
        .map(|s| [s.prompt.clone(), s.completion.clone()].concat())
        .collect();
    let refs: Vec<SeqRef> = refs_tokens
        .iter()
        .zip(&seqs)
        .map(|(t, s)| SeqRef {
            tokens: t,
            score_from: s.prompt.len(),
        })
        .collect();
    let cur = tf.logprobs(Some(&w), &refs).unwrap();
    for (s, c) in seqs.iter_mut().zip(&cur) {
        s.old_logprobs = Some(c.iter().map(|&x| x + 0.3 * rng.normal()).collect());
    }
    let mut cfg = GrpoConfig {
        beta: 0.1,
        epsilon_high: Some(0.28),
        loss_type,
        eos_token_id: Some(seqs[1].completion[9]),
        ..Default::default()
    };
    adjust(&mut cfg);
    let batch = GrpoBatch {
        seqs: seqs.clone(),
        advantages: Advantages::FromRewards {
            rewards: vec![1.0, 0.0, 0.5, 2.0],
            groups: vec![0, 0, 1, 1],
        },
    };
    let mut grads = w.zeros_like();
    let st = grpo_loss_and_grad(&tf, &w, &batch, &cfg, &mut grads).unwrap();
    let name = format!("GRPO {arch:?} {loss_type:?}{tag}");
    eprintln!(
        "{name}: loss {:.5} kl {:.4} clip {:.3} (low {:.3} high {:.3}) entropy kept {:.3} tokens {}",
        st.loss,
        st.mean_kl,
        st.clip_ratio,
        st.clip_ratio_low,
        st.clip_ratio_high,
        st.entropy_kept,
        st.n_tokens
    );
    assert!(
        st.clip_ratio > 0.0 && st.clip_ratio < 1.0,
        "test should exercise clipping"
    );
    let adv = st.advantages.clone();
    let refp = tf.logprobs(None, &refs).unwrap();
    let old: Vec<Vec<f32>> = seqs
        .iter()
        .map(|s| s.old_logprobs.clone().unwrap())
        .collect();
    // The entropies at the expansion point.
    let mut ent = Vec::new();
    tf.forward_backward_scored(
        &w,
        &refs,
        true,
        |lp, e| {
            ent = e.to_vec();
            Ok((0.0, lp.iter().map(|s| vec![0.0; s.len()]).collect()))
        },
        &mut w.zeros_like(),
    )
    .unwrap();
    let eos = cfg.eos_token_id.unwrap();
    let mask: Vec<usize> = seqs
        .iter()
        .map(|s| {
            if s.truncated && cfg.mask_truncated_completions {
                return 0;
            }
            s.completion
                .iter()
                .position(|&t| t == eos)
                .map_or(s.completion.len(), |p| p + 1)
        })
        .collect();
    assert!(
        mask[1] < seqs[1].completion.len(),
        "EOS masking should be exercised"
    );
    assert_eq!(st.n_tokens, mask.iter().sum::<usize>());
    let loss = |p: &LoraWeights| {
        let lp = tf.logprobs(Some(p), &refs).unwrap();
        grpo_loss_from_inputs(
            &GrpoInputs {
                logp: &lp,
                old: Some(&old),
                refp: Some(&refp),
                entropy: Some(&ent),
                rollout: None,
                adv: &adv,
                mask: &mask,
            },
            &cfg,
        )
        .unwrap()
        .0
        .loss
    };
    let l0 = loss(&w);
    assert!(
        (l0 - st.loss).abs() < 1e-5 * (1.0 + l0.abs()),
        "loss recomputation differs: {l0} vs {}",
        st.loss
    );
    let worst = check(&name, &w, &grads, &loss);
    eprintln!("{name}: worst relative error {worst:.2e}");
    assert!(
        worst <= 1e-2,
        "GRPO gradient check: worst relative error {worst}"
    );
}

#[test]
fn grpo_gradcheck_llama() {
    grpo_case(Arch::Llama, LossType::Grpo);
}

#[test]
fn grpo_gradcheck_qwen2_dapo() {
    grpo_case(Arch::Qwen2, LossType::Dapo);
}

#[test]
fn grpo_gradcheck_llama_dr_grpo() {
    grpo_case(Arch::Llama, LossType::DrGrpo);
}

fn sft_case(arch: Arch, completion_only: bool) {
    sft_case_lens(arch, completion_only, &[(4, 12), (6, 5), (2, 20)]);
}

fn sft_case_lens(arch: Arch, completion_only: bool, lens: &[(usize, usize)]) {
    let tf = tiny(arch);
    let w = lora(&tf);
    let v = tf.model().hp.n_vocab;
    let mut rng = Rng::new(3);
    let ex: Vec<SftExample> = lens
        .iter()
        .map(|&(p, c)| SftExample {
            prompt: toks(&mut rng, p, v),
            completion: toks(&mut rng, c, v),
        })
        .collect();
    let cfg = SftConfig { completion_only };
    let mut grads = w.zeros_like();
    let st = sft_loss_and_grad(&tf, &w, &ex, &cfg, &mut grads).unwrap();
    let tokens: Vec<Vec<u32>> = ex
        .iter()
        .map(|e| [e.prompt.clone(), e.completion.clone()].concat())
        .collect();
    let refs: Vec<SeqRef> = tokens
        .iter()
        .zip(&ex)
        .map(|(t, e)| SeqRef {
            tokens: t,
            score_from: if completion_only { e.prompt.len() } else { 1 },
        })
        .collect();
    let loss = |p: &LoraWeights| {
        sft_loss_from_logprobs(&tf.logprobs(Some(p), &refs).unwrap())
            .0
            .loss
    };
    eprintln!(
        "SFT {arch:?} completion_only={completion_only}: loss {:.5} tokens {}",
        st.loss, st.n_tokens
    );
    let worst = check(&format!("SFT {arch:?}"), &w, &grads, &loss);
    assert!(
        worst <= 1e-2,
        "SFT gradient check: worst relative error {worst}"
    );
}

#[test]
fn sft_gradcheck_llama_all_tokens() {
    sft_case(Arch::Llama, false);
}

#[test]
fn sft_gradcheck_qwen2_completion_only() {
    sft_case(Arch::Qwen2, true);
}

/// Sequences longer than the attention tile (128 query rows) exercise the tiled causal path.
#[test]
fn sft_gradcheck_long_sequences() {
    sft_case_lens(Arch::Qwen2, false, &[(10, 290), (3, 140)]);
}

/// Gemma 3: √d embeddings, q/k head norms, post norms, GeGLU, a 6-token window on layer 0
/// (sequences up to 22 tokens) and heads wider than `n_embd / n_head`.
#[test]
fn sft_gradcheck_gemma3() {
    sft_case(Arch::Gemma3, true);
}

#[test]
fn grpo_gradcheck_gemma3() {
    grpo_case(Arch::Gemma3, LossType::Grpo);
}

/// Qwen3: q/k head norms, no biases, heads wider than `n_embd / n_head`.
#[test]
fn sft_gradcheck_qwen3() {
    sft_case(Arch::Qwen3, false);
}

/// GSPO: one importance ratio per sequence (the exp of its mean log-ratio), clipped whole.
#[test]
fn grpo_gradcheck_sequence_level() {
    grpo_case_with(Arch::Llama, LossType::Grpo, " GSPO", |c| {
        c.importance_sampling_level = IsLevel::Sequence;
        // Sequence ratios move less than token ratios: a narrower clip still clips some.
        c.epsilon = 0.05;
        c.epsilon_high = Some(0.05);
    });
}

/// The truncated completion carries no loss (sequence 2 gets mask 0), DAPO normalisation.
#[test]
fn grpo_gradcheck_mask_truncated() {
    grpo_case_with(Arch::Qwen2, LossType::Dapo, " mask-truncated", |c| {
        c.mask_truncated_completions = true;
    });
}

/// The policy term only on the top 40% highest-entropy loss tokens; KL everywhere.
#[test]
fn grpo_gradcheck_top_entropy_quantile() {
    grpo_case_with(Arch::Gemma3, LossType::Grpo, " top-entropy 0.4", |c| {
        c.top_entropy_quantile = 0.4;
    });
}

/// Qwen3 with every option at once: sequence level, truncated masked, entropy quantile.
#[test]
fn grpo_gradcheck_qwen3_all_options() {
    grpo_case_with(Arch::Qwen3, LossType::DrGrpo, " all options", |c| {
        c.importance_sampling_level = IsLevel::Sequence;
        c.epsilon = 0.05;
        c.epsilon_high = Some(0.05);
        c.mask_truncated_completions = true;
        c.top_entropy_quantile = 0.5;
    });
}
