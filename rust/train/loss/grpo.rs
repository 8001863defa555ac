//! GRPO loss as in DESIGN.md / TRL: per token
//! `ℓ = −[min(ρA, clip(ρ, 1−ε, 1+ε_high)A) − β·KL]`, `ρ = exp(logp − logp_old)`,
//! `KL = exp(ref − logp) − (ref − logp) − 1`, over completion tokens up to and including the
//! first EOS, normalised per `LossType`.

use serde::{Deserialize, Serialize};

use crate::train::error::{Result, TrainError};
use crate::train::model::{JoinedSeqs, LoraModel, SeqRef};

/// Loss normalisation (TRL's `loss_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// Mean over each sequence's tokens, then mean over sequences.
    Grpo,
    /// Sum over all tokens divided by the number of tokens in the batch.
    Dapo,
    /// Sum over all tokens divided by `n_sequences × max_completion_length` (a constant).
    DrGrpo,
}

/// How rewards are scaled into advantages (TRL's `scale_rewards`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleRewards {
    /// Divide by the group's (unbiased) standard deviation + 1e-4.
    Group,
    /// Divide by the whole batch's (unbiased) standard deviation + 1e-4.
    Batch,
    /// No division (Dr. GRPO).
    None,
}

/// GRPO hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoConfig {
    /// Lower clip ε (ρ ≥ 1 − ε).
    pub epsilon: f32,
    /// Upper clip (ρ ≤ 1 + ε_high); `None` = `epsilon`.
    pub epsilon_high: Option<f32>,
    /// KL coefficient β; 0 disables the KL term (no reference log-probs needed).
    pub beta: f32,
    pub loss_type: LossType,
    pub scale_rewards: ScaleRewards,
    /// Constant denominator for `DrGrpo`; `None` = the longest completion in the batch.
    pub max_completion_length: Option<usize>,
    /// End-of-sequence token: the loss mask stops after its first occurrence.
    pub eos_token_id: Option<u32>,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        GrpoConfig {
            epsilon: 0.2,
            epsilon_high: None,
            beta: 0.04,
            loss_type: LossType::Grpo,
            scale_rewards: ScaleRewards::Group,
            max_completion_length: None,
            eos_token_id: None,
        }
    }
}

impl GrpoConfig {
    fn validate(&self) -> Result<()> {
        let eh = self.epsilon_high.unwrap_or(self.epsilon);
        if !((0.0..1.0).contains(&self.epsilon) && eh.is_finite() && eh >= 0.0) {
            return Err(TrainError::config(
                "GRPO epsilon must be in [0, 1) and epsilon_high >= 0",
            ));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(TrainError::config("GRPO beta must be >= 0"));
        }
        if self.max_completion_length == Some(0) {
            return Err(TrainError::config("max_completion_length must be >= 1"));
        }
        Ok(())
    }
}

/// One rollout: prompt and completion tokens, with optional per-completion-token log-probs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GrpoSequence {
    /// Prompt tokens (at least one).
    pub prompt: Vec<u32>,
    /// Completion tokens.
    pub completion: Vec<u32>,
    /// Log-probs under the sampling policy (`completion.len()` values); `None` = current policy
    /// (μ = 1: ρ = 1 with gradient ρA).
    pub old_logprobs: Option<Vec<f32>>,
    /// Log-probs under the reference model (adapter off); computed when `None` and β > 0.
    pub ref_logprobs: Option<Vec<f32>>,
}

/// Advantages, given or derived from rewards.
#[derive(Clone, Debug, PartialEq)]
pub enum Advantages {
    /// One advantage per sequence.
    Given(Vec<f32>),
    /// One reward and one group id per sequence; see [`compute_advantages`].
    FromRewards {
        rewards: Vec<f32>,
        groups: Vec<usize>,
    },
}

/// A GRPO micro-batch.
#[derive(Clone, Debug, PartialEq)]
pub struct GrpoBatch {
    pub seqs: Vec<GrpoSequence>,
    pub advantages: Advantages,
}

/// Diagnostics of one GRPO evaluation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GrpoStats {
    pub loss: f64,
    /// Mean k3 KL over masked tokens (0 when β = 0 and no reference given).
    pub mean_kl: f64,
    /// Fraction of masked tokens where the clipped branch was taken.
    pub clip_ratio: f64,
    /// Masked (loss-bearing) tokens.
    pub n_tokens: usize,
    pub advantages: Vec<f32>,
}

/// `A = (R − mean_g R) / (std_g R + 1e-4)` (unbiased std) per group, or scaled by the batch std,
/// or unscaled. Groups of one get std 0 (A = 0 after centring).
pub fn compute_advantages(
    rewards: &[f32],
    groups: &[usize],
    scale: ScaleRewards,
) -> Result<Vec<f32>> {
    if rewards.len() != groups.len() {
        return Err(TrainError::shape("group ids", rewards.len(), groups.len()));
    }
    if rewards.iter().any(|r| !r.is_finite()) {
        return Err(TrainError::config("rewards must be finite"));
    }
    let std = |xs: &[f64]| -> f64 {
        if xs.len() < 2 {
            return 0.0;
        }
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
    };
    let all: Vec<f64> = rewards.iter().map(|&r| r as f64).collect();
    let batch_std = std(&all);
    let mut out = vec![0f32; rewards.len()];
    let mut ids: Vec<usize> = groups.to_vec();
    ids.sort_unstable();
    ids.dedup();
    for g in ids {
        let idx: Vec<usize> = (0..rewards.len()).filter(|&i| groups[i] == g).collect();
        let xs: Vec<f64> = idx.iter().map(|&i| all[i]).collect();
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        let s = match scale {
            ScaleRewards::Group => std(&xs) + 1e-4,
            ScaleRewards::Batch => batch_std + 1e-4,
            ScaleRewards::None => 1.0,
        };
        for &i in &idx {
            out[i] = ((all[i] - m) / s) as f32;
        }
    }
    Ok(out)
}

/// Per-sequence loss mask length: up to and including the first EOS.
fn mask_len(completion: &[u32], eos: Option<u32>) -> usize {
    match eos.and_then(|e| completion.iter().position(|&t| t == e)) {
        Some(p) => p + 1,
        None => completion.len(),
    }
}

/// The GRPO loss and ∂loss/∂logp from completion log-probs (no model involved).
///
/// `logp[i]`, `old[i]`, `refp[i]` have `completion.len()` entries for sequence i; `old = None`
/// means "same as logp" and `refp = None` disables the KL term for that call.
pub fn grpo_loss_from_logprobs(
    logp: &[Vec<f32>],
    old: Option<&[Vec<f32>]>,
    refp: Option<&[Vec<f32>]>,
    adv: &[f32],
    mask: &[usize],
    cfg: &GrpoConfig,
) -> Result<(GrpoStats, Vec<Vec<f32>>)> {
    cfg.validate()?;
    let n = logp.len();
    if adv.len() != n || mask.len() != n {
        return Err(TrainError::shape(
            "advantages/masks",
            n,
            (adv.len(), mask.len()),
        ));
    }
    let (lo, hi) = (
        1.0 - cfg.epsilon as f64,
        1.0 + cfg.epsilon_high.unwrap_or(cfg.epsilon) as f64,
    );
    let beta = cfg.beta as f64;
    let total: usize = mask.iter().sum();
    let max_len = cfg
        .max_completion_length
        .unwrap_or_else(|| logp.iter().map(Vec::len).max().unwrap_or(1))
        .max(1);
    let mut stats = GrpoStats {
        n_tokens: total,
        advantages: adv.to_vec(),
        ..Default::default()
    };
    let mut grads = Vec::with_capacity(n);
    let (mut kl_sum, mut clipped) = (0f64, 0usize);
    for i in 0..n {
        let m = mask[i];
        let lp = &logp[i];
        if m > lp.len() {
            return Err(TrainError::shape("loss mask", lp.len(), m));
        }
        for (name, v) in [("old log-probs", old), ("reference log-probs", refp)] {
            if let Some(v) = v {
                if v.len() != n || v[i].len() < m {
                    return Err(TrainError::shape(
                        format!("{name} of sequence {i}"),
                        m,
                        v.get(i).map_or(0, Vec::len),
                    ));
                }
            }
        }
        let norm = match cfg.loss_type {
            LossType::Grpo => 1.0 / (n as f64 * m.max(1) as f64),
            LossType::Dapo => 1.0 / total.max(1) as f64,
            LossType::DrGrpo => 1.0 / (n as f64 * max_len as f64),
        };
        let a = adv[i] as f64;
        let mut g = vec![0f32; lp.len()];
        for t in 0..m {
            let l = lp[t] as f64;
            let o = old.map_or(l, |o| o[i][t] as f64);
            let rho = (l - o).exp();
            let c = rho.clamp(lo, hi);
            let (obj, dobj) = if rho * a <= c * a {
                (rho * a, rho * a)
            } else {
                clipped += 1;
                (
                    c * a,
                    if (lo..=hi).contains(&rho) {
                        rho * a
                    } else {
                        0.0
                    },
                )
            };
            let (kl, dkl) = match refp {
                Some(r) if beta > 0.0 => {
                    let d = r[i][t] as f64 - l;
                    (d.exp() - d - 1.0, 1.0 - d.exp())
                }
                _ => (0.0, 0.0),
            };
            kl_sum += kl;
            stats.loss += -(obj - beta * kl) * norm;
            g[t] = (-(dobj - beta * dkl) * norm) as f32;
        }
        grads.push(g);
    }
    stats.mean_kl = kl_sum / total.max(1) as f64;
    stats.clip_ratio = clipped as f64 / total.max(1) as f64;
    Ok((stats, grads))
}

/// Computes the GRPO loss of `batch` under `lora` and **adds** its gradient to `grads`.
///
/// Missing reference log-probs are computed with the adapter switched off when β > 0.
/// Runs on whichever device `tf` drives ([`LoraModel`]).
pub fn grpo_loss_and_grad<M: LoraModel + ?Sized>(
    tf: &M,
    lora: &M::Lora,
    batch: &GrpoBatch,
    cfg: &GrpoConfig,
    grads: &mut M::Lora,
) -> Result<GrpoStats> {
    cfg.validate()?;
    let n = batch.seqs.len();
    if n == 0 {
        return Err(TrainError::config("empty GRPO batch"));
    }
    let adv = match &batch.advantages {
        Advantages::Given(a) => {
            if a.len() != n {
                return Err(TrainError::shape("advantages", n, a.len()));
            }
            a.clone()
        }
        Advantages::FromRewards { rewards, groups } => {
            if rewards.len() != n {
                return Err(TrainError::shape("rewards", n, rewards.len()));
            }
            compute_advantages(rewards, groups, cfg.scale_rewards)?
        }
    };
    for (i, s) in batch.seqs.iter().enumerate() {
        if s.prompt.is_empty() {
            return Err(TrainError::config(format!("sequence {i}: empty prompt")));
        }
        let c = s.completion.len();
        for (name, v) in [
            ("old_logprobs", &s.old_logprobs),
            ("ref_logprobs", &s.ref_logprobs),
        ] {
            if let Some(v) = v {
                if v.len() != c {
                    return Err(TrainError::shape(
                        format!("sequence {i} {name}"),
                        c,
                        v.len(),
                    ));
                }
            }
        }
    }
    let joined = JoinedSeqs::completions(
        batch
            .seqs
            .iter()
            .map(|s| (s.prompt.as_slice(), s.completion.as_slice())),
    );
    let refs = joined.refs();
    let mask: Vec<usize> = batch
        .seqs
        .iter()
        .map(|s| mask_len(&s.completion, cfg.eos_token_id))
        .collect();
    let ref_lp: Option<Vec<Vec<f32>>> = if cfg.beta > 0.0 {
        let missing: Vec<usize> = (0..n)
            .filter(|&i| batch.seqs[i].ref_logprobs.is_none())
            .collect();
        let computed = if missing.is_empty() {
            Vec::new()
        } else {
            let sub: Vec<SeqRef> = missing.iter().map(|&i| refs[i]).collect();
            tf.logprobs(None, &sub)?
        };
        let mut it = computed.into_iter();
        Some(
            batch
                .seqs
                .iter()
                .map(|s| {
                    s.ref_logprobs
                        .clone()
                        .unwrap_or_else(|| it.next().unwrap_or_default())
                })
                .collect(),
        )
    } else {
        None
    };
    let old: Option<Vec<Vec<f32>>> = if batch.seqs.iter().all(|s| s.old_logprobs.is_none()) {
        None
    } else {
        Some(
            batch
                .seqs
                .iter()
                .map(|s| s.old_logprobs.clone().unwrap_or_default())
                .collect(),
        )
    };
    let mut stats_out = GrpoStats::default();
    let fb = tf.forward_backward(
        lora,
        &refs,
        |lp| {
            // Sequences without old log-probs use the current ones (ρ = 1).
            let old_full: Option<Vec<Vec<f32>>> = old.as_ref().map(|o| {
                o.iter()
                    .zip(lp)
                    .map(|(ov, cur)| {
                        if ov.is_empty() && !cur.is_empty() {
                            cur.clone()
                        } else {
                            ov.clone()
                        }
                    })
                    .collect()
            });
            let (st, g) = grpo_loss_from_logprobs(
                lp,
                old_full.as_deref(),
                ref_lp.as_deref(),
                &adv,
                &mask,
                cfg,
            )?;
            let loss = st.loss;
            stats_out = st;
            Ok((loss, g))
        },
        grads,
    )?;
    stats_out.loss = fb.loss;
    Ok(stats_out)
}
