//! One SFT step: the next `batch_size` rows rendered with the chat template, cross-entropy on
//! the solution (or on every token), gradients accumulated over micro-batches, one AdamW step.

use std::time::Instant;

use super::data::Problem;
use super::metrics::StepMetrics;
use super::trainer::{Stage, StepStage, Trainer};
use crate::error::{Error, ErrorCode, Result};
use crate::train::loss::{join_examples, SftConfig, SftExample};

impl Trainer {
    /// Prompt (chat template + system prompt) and completion (solution + end-of-sequence)
    /// tokens of a row, the completion truncated so the whole fits `max_seq_len`.
    pub fn sft_example(&self, row: &Problem) -> Result<SftExample> {
        let m = &self.engine_model;
        let prompt = self.cfg.prompt.tokenize(m, &row.problem)?;
        let mut completion = m.tokenize(&row.solution, false, false)?;
        if let Some(eos) = m.eos() {
            completion.push(eos);
        }
        let to_u32 = |v: Vec<i32>| v.into_iter().map(|t| t as u32).collect::<Vec<u32>>();
        let (prompt, mut completion) = (to_u32(prompt), to_u32(completion));
        let max = self.cfg.sft.max_seq_len;
        if prompt.len() + 1 >= max {
            return Err(Error::invalid(format!(
                "prompt of {} tokens does not fit sft.max_seq_len {max}",
                prompt.len()
            )));
        }
        completion.truncate(max - prompt.len());
        Ok(SftExample { prompt, completion })
    }

    /// Concatenates examples into sequences of at most `max_seq_len` tokens (loss on every
    /// token after the first of each pack).
    fn pack(&self, examples: Vec<SftExample>) -> Vec<SftExample> {
        let max = self.cfg.sft.max_seq_len;
        let mut packs: Vec<Vec<u32>> = Vec::new();
        for e in examples {
            let seq = [e.prompt, e.completion].concat();
            match packs.last_mut() {
                Some(p) if p.len() + seq.len() <= max => p.extend(seq),
                _ => packs.push(seq),
            }
        }
        packs
            .into_iter()
            .map(|mut p| {
                let rest = p.split_off(1);
                SftExample {
                    prompt: p,
                    completion: rest,
                }
            })
            .collect()
    }

    /// Runs one SFT optimizer step on the next rows of the data order, or on `rows` when given.
    /// A step that fails changes nothing: weights, optimizer state, RNG, data order and the
    /// metrics files are as before it. A NaN or infinite loss or gradient fails the step
    /// ([`ErrorCode::NonFinite`]).
    pub fn sft_step(&mut self, rows: Option<&[Problem]>) -> Result<StepMetrics> {
        self.atomic_step(|t| t.sft_step_inner(rows))
    }

    fn sft_step_inner(&mut self, rows: Option<&[Problem]>) -> Result<StepMetrics> {
        let t0 = Instant::now();
        let batch: Vec<Problem> = match rows {
            Some([]) => return Err(Error::invalid("empty SFT batch")),
            Some(r) => r.to_vec(),
            None => self
                .order
                .take(self.cfg.sft.batch_size)
                .into_iter()
                .map(|i| self.data[i].clone())
                .collect(),
        };
        let mut examples = batch
            .iter()
            .map(|r| self.sft_example(r))
            .collect::<Result<Vec<_>>>()?;
        let opts = self.cfg.sft.clone();
        self.fault(StepStage::Inputs)?;
        if opts.packing {
            examples = self.pack(examples);
        }
        let loss_cfg = SftConfig {
            completion_only: opts.completion_only && !opts.packing,
        };
        let n_tokens: usize = examples
            .iter()
            .map(|e| e.prompt.len() + e.completion.len())
            .sum();
        let max_len = examples
            .iter()
            .map(|e| e.prompt.len() + e.completion.len())
            .max()
            .unwrap_or(0);
        let micro: Vec<&[SftExample]> = examples.chunks(opts.micro_batch).collect();
        self.zero_grads()?;
        let mut loss = 0.0;
        for mb in &micro {
            loss += self.sft_micro_batch(mb, &loss_cfg)?.loss;
        }
        if !loss.is_finite() {
            return Err(Error::new(
                ErrorCode::NonFinite,
                format!(
                    "SFT step {}: the loss is {loss}; nothing was updated",
                    self.opt.step + 1
                ),
            ));
        }
        self.fault(StepStage::Loss)?;
        let scale = 1.0 / micro.len() as f32;
        let st = self.optimizer_step(scale)?;
        self.adapter_stale = true;
        self.fault(StepStage::Update)?;
        let train_s = t0.elapsed().as_secs_f64();
        let mut m = StepMetrics {
            step: st.step,
            stage: Stage::Sft.as_str().into(),
            loss: loss / micro.len() as f64,
            completion_tokens_mean: n_tokens as f64 / examples.len() as f64,
            completion_tokens_max: max_len,
            grad_norm: st.grad_norm,
            lr: st.lr as f64,
            time_training_s: train_s,
            train_tokens_per_s: n_tokens as f64 / train_s.max(1e-9),
            ..Default::default()
        };
        let every = opts.eval_every;
        let last = self.planned_steps > 0 && st.step >= self.planned_steps;
        if !self.validation.is_empty() && ((every > 0 && st.step % every == 0) || last) {
            m.val_loss = Some(self.validation_loss()?);
            self.fault(StepStage::Validation)?;
        }
        m.elapsed_s = self.elapsed_s();
        self.metrics.append(m.clone())?;
        self.fault(StepStage::Metrics)?;
        Ok(m)
    }

    /// Mean NLL per loss token on the validation rows (at most `max_validation_rows`), with the
    /// same loss mask as training.
    pub fn validation_loss(&self) -> Result<f64> {
        let rows = &self.validation[..self
            .validation
            .len()
            .min(self.cfg.sft.max_validation_rows.max(1))];
        let examples = rows
            .iter()
            .map(|r| self.sft_example(r))
            .collect::<Result<Vec<_>>>()?;
        let (mut sum, mut n) = (0.0f64, 0usize);
        for chunk in examples.chunks(self.cfg.sft.micro_batch) {
            let joined = join_examples(chunk, self.cfg.sft.completion_only);
            for lp in self.current_logprobs(&joined.refs())? {
                sum -= lp.iter().map(|&v| v as f64).sum::<f64>();
                n += lp.len();
            }
        }
        Ok(sum / n.max(1) as f64)
    }
}
