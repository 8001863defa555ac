//! GRPO loss as in DESIGN.md / TRL: per token
//! `ℓ = −[m_H · min(ρA, clip(ρ, 1−ε, 1+ε_high)A) − β·KL]`, `KL = exp(ref − logp) − (ref − logp) − 1`,
//! over completion tokens up to and including the first EOS (none of a truncated completion's
//! with `mask_truncated_completions`), normalised per `LossType`. The ratio ρ is per token,
//! `exp(logp − logp_old)`, or per sequence (GSPO), `exp(mean over the sequence's tokens of
//! (logp − logp_old))`. `m_H` is 1, or with `top_entropy_quantile` q < 1 it keeps the policy
//! term only on tokens whose predictive entropy is in the top q of the batch's tokens.

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

/// Where the importance ratio is taken (TRL's `importance_sampling_level`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsLevel {
    /// `ρ_t = exp(logp_t − old_t)` per token (GRPO).
    #[default]
    Token,
    /// One ratio per sequence, `exp` of the mean log-ratio over its loss tokens (GSPO).
    Sequence,
}

fn one() -> f32 {
    1.0
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
    /// Token-level ratios (default) or one ratio per sequence (GSPO).
    #[serde(default)]
    pub importance_sampling_level: IsLevel,
    /// Completions marked `truncated` (cut at the token limit) carry no loss at all; their
    /// rewards still count in their group's advantages (default false).
    #[serde(default)]
    pub mask_truncated_completions: bool,
    /// Keep the policy term only on the tokens whose entropy is at or above the
    /// `1 − q` quantile of the call's loss tokens (linear interpolation); 1 = every token
    /// (default). The KL term stays on every token.
    #[serde(default = "one")]
    pub top_entropy_quantile: f32,
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
            importance_sampling_level: IsLevel::Token,
            mask_truncated_completions: false,
            top_entropy_quantile: 1.0,
        }
    }
}

impl GrpoConfig {
    /// Checks the ranges of the options.
    pub fn validate(&self) -> Result<()> {
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
        let q = self.top_entropy_quantile;
        if !(q > 0.0 && q <= 1.0) {
            return Err(TrainError::config("top_entropy_quantile must be in (0, 1]"));
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
    /// The completion was cut at the token limit (no end of its own).
    pub truncated: bool,
    /// Log-probs the sampler reported for the completion tokens (`completion.len()` values),
    /// for measuring how far the sampling model is from the one trained; no effect on the loss.
    pub rollout_logprobs: Option<Vec<f32>>,
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
    /// Fraction of masked tokens with ratio below `1 − ε` and a negative advantage (clipped
    /// from below), above `1 + ε_high` with a positive one (from above), and either (TRL's
    /// `clip_ratio/low_mean`, `high_mean`, `region_mean`).
    pub clip_ratio_low: f64,
    pub clip_ratio_high: f64,
    pub clip_ratio_region: f64,
    /// Mean entropy (nats) of the predicted distributions over masked tokens, when known.
    pub mean_entropy: Option<f64>,
    /// Fraction of masked tokens whose policy term the entropy quantile kept.
    pub entropy_kept: f64,
    /// Mean |sampler log-prob − trainer log-prob| over masked tokens with sampler log-probs.
    pub rollout_logprob_gap: Option<f64>,
    /// Masked (loss-bearing) tokens.
    pub n_tokens: usize,
    pub advantages: Vec<f32>,
    /// The current policy's completion log-probs this call saw (per sequence).
    pub logprobs: Vec<Vec<f32>>,
}

/// Everything the GRPO loss reads, per sequence (`completion.len()` values in each inner
/// vector; `mask[i]` loss tokens from the start of sequence i).
#[derive(Clone, Copy, Debug)]
pub struct GrpoInputs<'a> {
    /// Current log-probs.
    pub logp: &'a [Vec<f32>],
    /// Log-probs of the policy that sampled (`None` = the current ones: ρ = 1).
    pub old: Option<&'a [Vec<f32>]>,
    /// Reference log-probs (`None` = no KL term).
    pub refp: Option<&'a [Vec<f32>]>,
    /// Predictive entropies (needed when `top_entropy_quantile < 1`).
    pub entropy: Option<&'a [Vec<f32>]>,
    /// Sampler log-probs, for the gap diagnostic only (empty vectors are skipped).
    pub rollout: Option<&'a [Vec<f32>]>,
    pub adv: &'a [f32],
    pub mask: &'a [usize],
}

/// The `p` quantile (in [0, 1]) of `xs` with linear interpolation between order statistics
/// (as `numpy.quantile` / `torch.quantile` by default); `None` for no values.
pub fn quantile(xs: &[f32], p: f64) -> Option<f32> {
    if xs.is_empty() {
        return None;
    }
    let mut v: Vec<f32> = xs.to_vec();
    v.sort_by(f32::total_cmp);
    let pos = p.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    let hi = (lo + 1).min(v.len() - 1);
    Some((v[lo] as f64 + frac * (v[hi] as f64 - v[lo] as f64)) as f32)
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

/// Per-sequence loss mask length: up to and including the first EOS; 0 for a truncated
/// completion when `mask_truncated` is set.
pub(crate) fn mask_len(
    completion: &[u32],
    eos: Option<u32>,
    truncated: bool,
    mask_truncated: bool,
) -> usize {
    if truncated && mask_truncated {
        return 0;
    }
    match eos.and_then(|e| completion.iter().position(|&t| t == e)) {
        Some(p) => p + 1,
        None => completion.len(),
    }
}

/// The GRPO loss and ∂loss/∂logp from completion log-probs (no model involved).
///
/// `logp[i]`, `old[i]`, `refp[i]` have `completion.len()` entries for sequence i; `old = None`
/// means "same as logp" and `refp = None` disables the KL term for that call. See
/// [`grpo_loss_from_inputs`] for the other options' inputs.
pub fn grpo_loss_from_logprobs(
    logp: &[Vec<f32>],
    old: Option<&[Vec<f32>]>,
    refp: Option<&[Vec<f32>]>,
    adv: &[f32],
    mask: &[usize],
    cfg: &GrpoConfig,
) -> Result<(GrpoStats, Vec<Vec<f32>>)> {
    grpo_loss_from_inputs(
        &GrpoInputs {
            logp,
            old,
            refp,
            entropy: None,
            rollout: None,
            adv,
            mask,
        },
        cfg,
    )
}

/// The GRPO loss and ∂loss/∂logp (one vector per sequence, `logp[i].len()` values, 0 past
/// the mask) with every option of `cfg` (module docs).
pub fn grpo_loss_from_inputs(
    x: &GrpoInputs<'_>,
    cfg: &GrpoConfig,
) -> Result<(GrpoStats, Vec<Vec<f32>>)> {
    cfg.validate()?;
    let (logp, old, refp, adv, mask) = (x.logp, x.old, x.refp, x.adv, x.mask);
    let n = logp.len();
    if adv.len() != n || mask.len() != n {
        return Err(TrainError::shape(
            "advantages/masks",
            n,
            (adv.len(), mask.len()),
        ));
    }
    for i in 0..n {
        let m = mask[i];
        if m > logp[i].len() {
            return Err(TrainError::shape("loss mask", logp[i].len(), m));
        }
        for (name, v) in [
            ("old log-probs", old),
            ("reference log-probs", refp),
            ("entropies", x.entropy),
        ] {
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
    // Entropy threshold of the policy term over all loss tokens of the call.
    let threshold = if cfg.top_entropy_quantile < 1.0 {
        let ent = x.entropy.ok_or_else(|| {
            TrainError::config("top_entropy_quantile < 1 needs the tokens' entropies")
        })?;
        let all: Vec<f32> = (0..n).flat_map(|i| ent[i][..mask[i]].to_vec()).collect();
        quantile(&all, 1.0 - cfg.top_entropy_quantile as f64)
    } else {
        None
    };
    let mut stats = GrpoStats {
        n_tokens: total,
        advantages: adv.to_vec(),
        logprobs: logp.to_vec(),
        ..Default::default()
    };
    let mut grads = Vec::with_capacity(n);
    let (mut kl_sum, mut clipped, mut kept) = (0f64, 0usize, 0usize);
    let (mut low, mut high, mut region) = (0usize, 0usize, 0usize);
    let (mut ent_sum, mut gap_sum, mut gap_n) = (0f64, 0f64, 0usize);
    for i in 0..n {
        let m = mask[i];
        let lp = &logp[i];
        let norm = match cfg.loss_type {
            LossType::Grpo => 1.0 / (n as f64 * m.max(1) as f64),
            LossType::Dapo => 1.0 / total.max(1) as f64,
            LossType::DrGrpo => 1.0 / (n as f64 * max_len as f64),
        };
        let a = adv[i] as f64;
        let log_ratio = |t: usize| lp[t] as f64 - old.map_or(lp[t] as f64, |o| o[i][t] as f64);
        // GSPO: one ratio for the whole sequence (the mean log-ratio of its loss tokens).
        let seq_ratio = match cfg.importance_sampling_level {
            IsLevel::Sequence if m > 0 => {
                Some(((0..m).map(log_ratio).sum::<f64>() / m as f64).exp())
            }
            _ => None,
        };
        let mut g = vec![0f32; lp.len()];
        // Σ over tokens of ∂(policy loss)/∂(log ratio) (sequence level only).
        let mut seq_grad = 0f64;
        for t in 0..m {
            let l = lp[t] as f64;
            let rho = seq_ratio.unwrap_or_else(|| log_ratio(t).exp());
            let c = rho.clamp(lo, hi);
            let is_low = rho < lo && a < 0.0;
            let is_high = rho > hi && a > 0.0;
            low += is_low as usize;
            high += is_high as usize;
            region += (is_low || is_high) as usize;
            // `dobj` = ∂obj/∂(log ratio).
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
            let keep = match (threshold, x.entropy) {
                (Some(th), Some(e)) => e[i][t] >= th,
                _ => true,
            };
            if let Some(e) = x.entropy {
                ent_sum += e[i][t] as f64;
            }
            if let Some(r) = x.rollout.and_then(|r| r.get(i)).filter(|r| r.len() > t) {
                gap_sum += (r[t] as f64 - l).abs();
                gap_n += 1;
            }
            let (kl, dkl) = match refp {
                Some(r) if beta > 0.0 => {
                    let d = r[i][t] as f64 - l;
                    (d.exp() - d - 1.0, 1.0 - d.exp())
                }
                _ => (0.0, 0.0),
            };
            kl_sum += kl;
            let (obj, dobj) = if keep { (obj, dobj) } else { (0.0, 0.0) };
            kept += keep as usize;
            stats.loss += -(obj - beta * kl) * norm;
            match seq_ratio {
                Some(_) => {
                    seq_grad += -dobj * norm;
                    g[t] = (beta * dkl * norm) as f32;
                }
                None => g[t] = (-(dobj - beta * dkl) * norm) as f32,
            }
        }
        if seq_ratio.is_some() {
            // ∂ log s / ∂ logp_t = 1/m for every loss token.
            let share = seq_grad / m as f64;
            for gt in &mut g[..m] {
                *gt = (*gt as f64 + share) as f32;
            }
        }
        grads.push(g);
    }
    let tot = total.max(1) as f64;
    stats.mean_kl = kl_sum / tot;
    stats.clip_ratio = clipped as f64 / tot;
    stats.clip_ratio_low = low as f64 / tot;
    stats.clip_ratio_high = high as f64 / tot;
    stats.clip_ratio_region = region as f64 / tot;
    stats.entropy_kept = kept as f64 / tot;
    stats.mean_entropy = x.entropy.map(|_| ent_sum / tot);
    stats.rollout_logprob_gap = (gap_n > 0).then(|| gap_sum / gap_n as f64);
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
            ("rollout_logprobs", &s.rollout_logprobs),
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
        .map(|s| {
            mask_len(
                &s.completion,
                cfg.eos_token_id,
                s.truncated,
                cfg.mask_truncated_completions,
            )
        })
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
    let rollout: Option<Vec<Vec<f32>>> = batch
        .seqs
        .iter()
        .any(|s| s.rollout_logprobs.is_some())
        .then(|| {
            batch
                .seqs
                .iter()
                .map(|s| s.rollout_logprobs.clone().unwrap_or_default())
                .collect()
        });
    let mut stats_out = GrpoStats::default();
    let fb = tf.forward_backward_scored(
        lora,
        &refs,
        true,
        |lp, ent| {
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
            let (st, g) = grpo_loss_from_inputs(
                &GrpoInputs {
                    logp: lp,
                    old: old_full.as_deref(),
                    refp: ref_lp.as_deref(),
                    entropy: Some(ent),
                    rollout: rollout.as_deref(),
                    adv: &adv,
                    mask: &mask,
                },
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
