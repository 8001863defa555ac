//! One GRPO step: rollouts with the current adapter → rewards → advantages → loss and update.
//!
//! μ = 1 (one update per batch of rollouts), so the old policy is the current one (ρ = 1 with
//! gradient ρA, as TRL computes it). The reference model for the KL term is the adapter the run
//! started from (`init_adapter`, e.g. the SFT result), or the base model when there is none.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use super::data::Problem;
use super::metrics::{MeanStd, StepMetrics};
use super::rollout_log::{append_rollouts, RolloutRecord};
use super::trainer::{RewardRequest, Stage, StepStage, Trainer};
use crate::error::{Error, ErrorCode, Result};
use crate::generate::{FinishReason, GroupRequest, GroupResult, RolloutHooks, RolloutParams};
use crate::reward::{score_group, Completion};
use crate::train::loss::{compute_advantages, Advantages, GrpoBatch, GrpoSequence, LossType};
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

        // 2. Rewards and advantages.
        let t_score = Instant::now();
        let mut records = Vec::new();
        let custom_weight = self.custom_reward_weight();
        for (gi, (p, res)) in batch.iter().zip(&groups).enumerate() {
            let comps: Vec<Completion> = res
                .samples
                .iter()
                .map(|s| Completion {
                    text: s.text.clone(),
                    num_tokens: s.tokens.len(),
                })
                .collect();
            let scores = score_group(&p.answer, &comps, &g.rewards);
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
                    correct: sc.correct,
                    advantage: 0.0,
                });
            }
        }
        let rewards: Vec<f32> = records.iter().map(|r| r.reward as f32).collect();
        let group_ids: Vec<usize> = records.iter().map(|r| r.group).collect();
        let mut adv = compute_advantages(&rewards, &group_ids, loss_cfg.scale_rewards)?;
        if g.skip_unsolved_groups {
            zero_unsolved_groups(&mut adv, &records);
        }
        for (r, a) in records.iter_mut().zip(&adv) {
            r.advantage = *a;
        }
        let scoring_s = t_score.elapsed().as_secs_f64();
        self.fault(StepStage::Scoring)?;

        // 3. Loss, gradients, update.
        let t_train = Instant::now();
        let mut seqs: Vec<GrpoSequence> = records
            .iter()
            .map(|r| GrpoSequence {
                prompt: r.prompt_tokens.clone(),
                completion: r.completion_tokens.clone(),
                old_logprobs: None,
                ref_logprobs: None,
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
        self.zero_grads()?;
        let (mut loss, mut kl, mut clip, mut n_micro) = (0.0, 0.0, 0.0, 0usize);
        for (chunk, a) in seqs.chunks(mb).zip(adv.chunks(mb)) {
            let b = GrpoBatch {
                seqs: chunk.to_vec(),
                advantages: Advantages::Given(a.to_vec()),
            };
            let st = self.grpo_micro_batch(&b, &loss_cfg)?;
            loss += st.loss;
            kl += st.mean_kl;
            clip += st.clip_ratio;
            n_micro += 1;
        }
        let k = n_micro.max(1) as f64;
        if !loss.is_finite() {
            return Err(Error::new(
                ErrorCode::NonFinite,
                format!("GRPO step {step}: the loss is {loss}; nothing was updated"),
            ));
        }
        self.fault(StepStage::Loss)?;
        let st = self.optimizer_step(1.0 / k as f32)?;
        self.adapter_stale = true;
        self.fault(StepStage::Update)?;
        let train_s = t_train.elapsed().as_secs_f64();
        let trained_tokens: usize = seqs
            .iter()
            .map(|s| s.prompt.len() + s.completion.len())
            .sum();

        let col = |f: fn(&RolloutRecord) -> f64| -> MeanStd {
            MeanStd::of(&records.iter().map(f).collect::<Vec<_>>())
        };
        let n = records.len() as f64;
        let lens: Vec<usize> = records.iter().map(|r| r.completion_tokens.len()).collect();
        let m = StepMetrics {
            step: st.step,
            stage: Stage::Grpo.as_str().into(),
            loss: loss / k,
            val_loss: None,
            reward: col(|r| r.reward),
            reward_format: col(|r| r.reward_format),
            reward_cosine: col(|r| r.reward_cosine),
            reward_length: col(|r| r.reward_length),
            reward_accuracy: col(|r| r.reward_accuracy),
            reward_custom: col(|r| r.reward_custom),
            accuracy: records.iter().filter(|r| r.correct).count() as f64 / n,
            format_rate: records.iter().filter(|r| r.reward_format > 0.0).count() as f64 / n,
            completion_tokens_mean: lens.iter().sum::<usize>() as f64 / n,
            completion_tokens_max: lens.iter().copied().max().unwrap_or(0),
            truncated_fraction: records
                .iter()
                .filter(|r| r.finish_reason == FinishReason::Length.as_str())
                .count() as f64
                / n,
            clip_fraction: clip / k,
            kl: kl / k,
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
            correct,
            advantage: 0.0,
        }
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
