//! One GRPO step: rollouts with the current adapter → rewards → advantages → loss and updates.
//!
//! With `num_iterations` μ = 1 (the paper) there is one update per batch of rollouts and the
//! old policy is the current one (ρ = 1 with gradient ρA, as TRL computes it). With μ > 1 the
//! batch is reused for μ optimizer updates; the old log-probs are the trainer's own, from the
//! first update's forward pass before any update (not the sampler's, which runs on quantized
//! weights). The reference model for the KL term is the adapter the run started from
//! (`init_adapter`, e.g. the SFT result), or the base model when there is none.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use super::data::Problem;
use super::metrics::{MeanStd, StepMetrics};
use super::rollout_log::{append_rollouts, RolloutRecord};
use super::trainer::{RewardRequest, Stage, StepStage, Trainer};
use crate::error::{Error, ErrorCode, Result};
use crate::generate::{FinishReason, GroupRequest, GroupResult, RolloutHooks, RolloutParams};
use crate::reward::{score_batch, Completion};
use crate::train::loss::{
    compute_advantages, Advantages, GrpoBatch, GrpoSequence, GrpoStats, LossType,
};
use crate::train::model::JoinedSeqs;

/// What one GRPO step did.
#[derive(Clone, Debug)]
pub struct GrpoStepOutput {
    pub metrics: StepMetrics,
    pub rollouts: Vec<RolloutRecord>,
}

impl Trainer {
    /// Runs one GRPO step on `problems` (host-supplied; each needs a gold answer) or, when
    /// `None`, on the next `prompts_per_step` rows of the data order. `cancel` stops the
    /// rollouts; a cancelled step returns [`ErrorCode::Cancelled`]. A step that fails or is
    /// cancelled changes nothing: weights, optimizer state, RNG, data order and the run's files
    /// are as before it. A NaN or infinite loss or gradient fails the step
    /// ([`ErrorCode::NonFinite`]).
    pub fn grpo_step(
        &mut self,
        problems: Option<&[Problem]>,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Result<GrpoStepOutput> {
        self.atomic_step(|t| t.grpo_step_inner(problems, cancel))
    }

    fn grpo_step_inner(
        &mut self,
        problems: Option<&[Problem]>,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Result<GrpoStepOutput> {
        let step = self.opt.step + 1;
        let batch: Vec<Problem> = match problems {
            Some([]) => return Err(Error::invalid("empty GRPO batch")),
            Some(p) => p.to_vec(),
            None => {
                let k = self.cfg.grpo.prompts_per_step;
                let idx = self.order.take(k);
                idx.into_iter().map(|i| self.data[i].clone()).collect()
            }
        };
        let g = self.cfg.grpo.clone();
        let mut loss_cfg = g.loss.clone();
        if loss_cfg.eos_token_id.is_none() {
            loss_cfg.eos_token_id = self.engine_model.eos().map(|t| t as u32);
        }
        if loss_cfg.loss_type == LossType::DrGrpo && loss_cfg.max_completion_length.is_none() {
            loss_cfg.max_completion_length = Some(g.max_completion_tokens);
        }

        // 1. Rollouts with the current adapter.
        let t_roll = Instant::now();
        self.sync_engine_adapter()?;
        // Every group of the step decodes together in one loop (prompts × G sequences).
        let mut requests = Vec::with_capacity(batch.len());
        let mut prompts = Vec::with_capacity(batch.len());
        for p in &batch {
            let prompt = self.cfg.prompt.tokenize(&self.engine_model, &p.problem)?;
            let mut params = RolloutParams {
                prompt: self.cfg.prompt.clone(),
                n_samples: g.generations,
                sampling: g.sampling.clone(),
                max_tokens: g.max_completion_tokens,
                stop_strings: g.stop_strings.clone(),
                ..RolloutParams::default()
            };
            params.sampling.seed = (self.rng.next_u64() >> 33) as u32;
            prompts.push(prompt.iter().map(|&t| t as u32).collect::<Vec<u32>>());
            requests.push(GroupRequest {
                prompt,
                params,
                hooks: RolloutHooks::default(),
            });
        }
        let mut done: Vec<Option<Result<GroupResult>>> = (0..batch.len()).map(|_| None).collect();
        self.generator()?
            .rollout_many(requests, 0, cancel.clone(), &mut |i, r| done[i] = Some(r))?;
        let mut groups = Vec::with_capacity(batch.len());
        for r in done {
            let res =
                r.ok_or_else(|| Error::new(ErrorCode::Internal, "a group never finished"))??;
            if res.cancelled {
                return Err(Error::new(ErrorCode::Cancelled, "GRPO step cancelled"));
            }
            groups.push(res);
        }
        let rollout_s = t_roll.elapsed().as_secs_f64();
        self.fault(StepStage::Inputs)?;
        let generated: usize = groups.iter().map(|r| r.tokens_generated).sum();

        // 2. Rewards and advantages (the Laser targets are estimated over the whole step).
        let t_score = Instant::now();
        let mut records = Vec::new();
        let mut sampler_lp: Vec<Vec<f32>> = Vec::new();
        let custom_weight = self.custom_reward_weight();
        let comps: Vec<Vec<Completion>> = groups
            .iter()
            .map(|res| {
                res.samples
                    .iter()
                    .map(|s| Completion {
                        text: s.text.clone(),
                        num_tokens: s.tokens.len(),
                    })
                    .collect()
            })
            .collect();
        let problems: Vec<(&str, &[Completion])> = batch
            .iter()
            .zip(&comps)
            .map(|(p, c)| (p.answer.as_str(), c.as_slice()))
            .collect();
        let all_scores = score_batch(&problems, &g.rewards);
        for (gi, ((p, res), scores)) in batch.iter().zip(&groups).zip(&all_scores).enumerate() {
            for (s, sc) in res.samples.iter().zip(&scores.completions) {
                let custom = match &mut self.custom_reward {
                    Some(f) => {
                        let v = f(&RewardRequest {
                            problem: &p.problem,
                            answer: &p.answer,
                            completion: &s.text,
                            completion_tokens: s.tokens.len(),
                        })?;
                        if !v.is_finite() {
                            return Err(Error::invalid(
                                "custom reward returned a non-finite value",
                            ));
                        }
                        v
                    }
                    None => 0.0,
                };
                // The sampler's log-probs are at its temperature: comparable to the trainer's
                // (temperature 1) only at temperature 1.
                sampler_lp.push(
                    if g.sampling.temperature == 1.0 && s.logprobs.len() == s.tokens.len() {
                        s.logprobs.clone()
                    } else {
                        Vec::new()
                    },
                );
                records.push(RolloutRecord {
                    step,
                    group: gi,
                    problem: p.problem.clone(),
                    answer: p.answer.clone(),
                    prompt_tokens: prompts[gi].clone(),
                    completion_tokens: s.tokens.iter().map(|&t| t as u32).collect(),
                    text: s.text.clone(),
                    finish_reason: s.finish_reason.as_str().into(),
                    reward: sc.total + custom_weight * custom,
                    reward_format: sc.format,
                    reward_cosine: sc.cosine,
                    reward_length: sc.length,
                    reward_accuracy: sc.accuracy,
                    reward_custom: custom,
                    reward_shorter_better: sc.shorter_better,
                    reward_laser: sc.laser,
                    reward_overlong: sc.overlong,
                    correct: sc.correct,
                    advantage: 0.0,
                });
            }
        }
        let rewards: Vec<f32> = records.iter().map(|r| r.reward as f32).collect();
        let group_ids: Vec<usize> = records.iter().map(|r| r.group).collect();
        let zero_std = zero_std_fraction(&rewards, &group_ids);
        let mut adv = compute_advantages(&rewards, &group_ids, loss_cfg.scale_rewards)?;
        if g.skip_unsolved_groups {
            zero_unsolved_groups(&mut adv, &records);
        }
        for (r, a) in records.iter_mut().zip(&adv) {
            r.advantage = *a;
        }
        let scoring_s = t_score.elapsed().as_secs_f64();
        self.fault(StepStage::Scoring)?;

        // 3. Loss, gradients, updates (μ of them on the same rollouts).
        let t_train = Instant::now();
        let mut seqs: Vec<GrpoSequence> = records
            .iter()
            .zip(sampler_lp)
            .map(|(r, lp)| GrpoSequence {
                prompt: r.prompt_tokens.clone(),
                completion: r.completion_tokens.clone(),
                old_logprobs: None,
                ref_logprobs: None,
                truncated: r.finish_reason == FinishReason::Length.as_str(),
                rollout_logprobs: (!lp.is_empty()).then_some(lp),
            })
            .collect();
        if loss_cfg.beta > 0.0 && self.init_lora.is_some() {
            let joined = JoinedSeqs::completions(
                seqs.iter()
                    .map(|s| (s.prompt.as_slice(), s.completion.as_slice())),
            );
            let lp = self.adapter_logprobs(true, &joined.refs())?;
            for (s, l) in seqs.iter_mut().zip(lp) {
                s.ref_logprobs = Some(l);
            }
        }
        let mb = if g.micro_batch == 0 {
            seqs.len()
        } else {
            g.micro_batch
        };
        let mu = g.num_iterations.max(1);
        let mut acc = IterStats::default();
        let mut st = None;
        for it in 0..mu {
            self.zero_grads()?;
            let mut old = Vec::with_capacity(seqs.len());
            for (chunk, a) in seqs.chunks(mb).zip(adv.chunks(mb)) {
                let b = GrpoBatch {
                    seqs: chunk.to_vec(),
                    advantages: Advantages::Given(a.to_vec()),
                };
                let s = self.grpo_micro_batch(&b, &loss_cfg)?;
                acc.add(&s);
                if mu > 1 && it == 0 {
                    old.extend(s.logprobs.iter().cloned());
                }
            }
            if !acc.loss.is_finite() {
                return Err(Error::new(
                    ErrorCode::NonFinite,
                    format!(
                        "GRPO step {step}: the loss is {}; nothing was updated",
                        acc.loss
                    ),
                ));
            }
            if it == 0 {
                self.fault(StepStage::Loss)?;
            }
            let n_micro = seqs.len().div_ceil(mb).max(1);
            st = Some(self.optimizer_step(1.0 / n_micro as f32)?);
            if it == 0 {
                // Later iterations: ratios against the policy before the first update, and no
                // sampler comparison (the policy has moved).
                for (s, o) in seqs.iter_mut().zip(old) {
                    s.old_logprobs = Some(o);
                    s.rollout_logprobs = None;
                }
            }
        }
        let Some(st) = st else {
            return Err(Error::new(ErrorCode::Internal, "no GRPO update ran"));
        };
        self.adapter_stale = true;
        self.fault(StepStage::Update)?;
        let train_s = t_train.elapsed().as_secs_f64();
        let trained_tokens: usize = seqs
            .iter()
            .map(|s| s.prompt.len() + s.completion.len())
            .sum::<usize>()
            * mu;

        let col = |f: fn(&RolloutRecord) -> f64| -> MeanStd {
            MeanStd::of(&records.iter().map(f).collect::<Vec<_>>())
        };
        let n = records.len() as f64;
        let lens: Vec<usize> = records.iter().map(|r| r.completion_tokens.len()).collect();
        let k = acc.n_micro.max(1) as f64;
        let m = StepMetrics {
            step: st.step,
            stage: Stage::Grpo.as_str().into(),
            loss: acc.loss / k,
            val_loss: None,
            reward: col(|r| r.reward),
            reward_format: col(|r| r.reward_format),
            reward_cosine: col(|r| r.reward_cosine),
            reward_length: col(|r| r.reward_length),
            reward_accuracy: col(|r| r.reward_accuracy),
            reward_custom: col(|r| r.reward_custom),
            reward_shorter_better: col(|r| r.reward_shorter_better),
            reward_laser: col(|r| r.reward_laser),
            reward_overlong: col(|r| r.reward_overlong),
            accuracy: records.iter().filter(|r| r.correct).count() as f64 / n,
            format_rate: records.iter().filter(|r| r.reward_format > 0.0).count() as f64 / n,
            completion_tokens_mean: lens.iter().sum::<usize>() as f64 / n,
            completion_tokens_max: lens.iter().copied().max().unwrap_or(0),
            truncated_fraction: records
                .iter()
                .filter(|r| r.finish_reason == FinishReason::Length.as_str())
                .count() as f64
                / n,
            clip_fraction: acc.clip / k,
            clip_ratio_low: acc.per_token(acc.low),
            clip_ratio_high: acc.per_token(acc.high),
            clip_ratio_region: acc.per_token(acc.region),
            entropy: (acc.ent_tokens > 0).then(|| acc.ent / acc.ent_tokens as f64),
            zero_std_fraction: zero_std,
            rollout_logprob_gap: (acc.gap_tokens > 0).then(|| acc.gap / acc.gap_tokens as f64),
            kl: acc.kl / k,
            grad_norm: st.grad_norm,
            lr: st.lr as f64,
            time_rollout_s: rollout_s,
            time_scoring_s: scoring_s,
            time_training_s: train_s,
            rollout_tokens_per_s: generated as f64 / rollout_s.max(1e-9),
            train_tokens_per_s: trained_tokens as f64 / train_s.max(1e-9),
            elapsed_s: self.elapsed_s(),
        };
        self.metrics.append(m.clone())?;
        self.fault(StepStage::Metrics)?;
        append_rollouts(&self.cfg.out_dir, &records)?;
        self.fault(StepStage::Rollouts)?;
        Ok(GrpoStepOutput {
            metrics: m,
            rollouts: records,
        })
    }
}

/// Statistics of a step's micro-batches over all its updates: loss, KL and clip fraction as
/// means over micro-batches; the rest token-weighted.
#[derive(Default)]
struct IterStats {
    n_micro: usize,
    loss: f64,
    kl: f64,
    clip: f64,
    tokens: usize,
    low: f64,
    high: f64,
    region: f64,
    ent: f64,
    ent_tokens: usize,
    gap: f64,
    gap_tokens: usize,
}

impl IterStats {
    fn add(&mut self, s: &GrpoStats) {
        let n = s.n_tokens as f64;
        self.n_micro += 1;
        self.loss += s.loss;
        self.kl += s.mean_kl;
        self.clip += s.clip_ratio;
        self.tokens += s.n_tokens;
        self.low += s.clip_ratio_low * n;
        self.high += s.clip_ratio_high * n;
        self.region += s.clip_ratio_region * n;
        if let Some(e) = s.mean_entropy {
            self.ent += e * n;
            self.ent_tokens += s.n_tokens;
        }
        if let Some(g) = s.rollout_logprob_gap {
            self.gap += g * n;
            self.gap_tokens += s.n_tokens;
        }
    }

    fn per_token(&self, sum: f64) -> f64 {
        sum / self.tokens.max(1) as f64
    }
}

/// Fraction of groups whose rewards are all equal (no learning signal after centring).
fn zero_std_fraction(rewards: &[f32], groups: &[usize]) -> f64 {
    let mut ids: Vec<usize> = groups.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return 0.0;
    }
    let flat = ids
        .iter()
        .filter(|&&g| {
            let mut it = rewards
                .iter()
                .zip(groups)
                .filter(|(_, &gg)| gg == g)
                .map(|(&r, _)| r);
            let first = it.next();
            it.all(|r| Some(r) == first)
        })
        .count();
    flat as f64 / ids.len() as f64
}

/// Sets the advantage of every record whose group has no correct completion to 0.
/// `adv` and `records` are parallel (one advantage per record).
fn zero_unsolved_groups(adv: &mut [f32], records: &[RolloutRecord]) {
    let solved: std::collections::HashSet<usize> = records
        .iter()
        .filter(|r| r.correct)
        .map(|r| r.group)
        .collect();
    for (a, r) in adv.iter_mut().zip(records) {
        if !solved.contains(&r.group) {
            *a = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(group: usize, correct: bool) -> RolloutRecord {
        RolloutRecord {
            step: 1,
            group,
            problem: String::new(),
            answer: String::new(),
            prompt_tokens: vec![],
            completion_tokens: vec![],
            text: String::new(),
            finish_reason: "eos".into(),
            reward: 0.0,
            reward_format: 0.0,
            reward_cosine: 0.0,
            reward_length: 0.0,
            reward_accuracy: 0.0,
            reward_custom: 0.0,
            reward_shorter_better: 0.0,
            reward_laser: 0.0,
            reward_overlong: 0.0,
            correct,
            advantage: 0.0,
        }
    }

    #[test]
    fn zero_std_counts_groups_with_equal_rewards() {
        let r = [1.0, 1.0, 0.5, 1.0, 2.0, 2.0, 2.0];
        let g = [0, 0, 1, 1, 2, 2, 2];
        assert!((zero_std_fraction(&r, &g) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(zero_std_fraction(&[], &[]), 0.0);
        assert_eq!(zero_std_fraction(&[3.0], &[5]), 1.0);
    }

    #[test]
    fn only_groups_without_a_correct_answer_lose_their_advantages() {
        let records = [
            record(0, false),
            record(0, false),
            record(1, false),
            record(1, true),
            record(2, true),
            record(2, true),
        ];
        let mut adv = [0.7, -0.7, -1.0, 1.0, 0.5, -0.5];
        zero_unsolved_groups(&mut adv, &records);
        assert_eq!(adv, [0.0, 0.0, -1.0, 1.0, 0.5, -0.5]);
    }
}
