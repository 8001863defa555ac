//! One group's state while it runs: per-sample state, the advance stage (a drawn token through
//! the per-sample stop policies and the stream), the group-stop stage, and the final vote.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::answer_key::AnswerKey;
use super::draw::{Draw, DrawJob};
use super::params::RolloutParams;
use super::plan::RolloutPlan;
use super::result::{FinishReason, GroupResult, SampleResult};
use super::rollout::{RolloutHooks, TokenEvent};
use super::sampling::Sampler;
use super::stop::{boxed_closed, contains_new_stop};
use super::vote::{consensus_reached, VoteTally};
use crate::answer::extract_answer;
use crate::engine::{Batch, Context, Model, Token};
use crate::error::{Error, ErrorCode, Result};

/// Per-sample state while the group runs.
struct SampleState {
    sampler: Sampler,
    tokens: Vec<Token>,
    logprobs: Vec<f32>,
    bytes: Vec<u8>,
    /// Next KV position of this sample.
    pos: i32,
    /// Batch entry holding this sample's next-token logits.
    logits_idx: Option<usize>,
    finish: Option<FinishReason>,
    /// Cut by a group decision (consensus, deadline, cancel, group budget).
    cut_by_group: bool,
    /// Sampled tokens (forced ones excluded).
    sampled: usize,
    thinking_closed: bool,
    forced_tokens: usize,
    /// Tokens still allowed after budget forcing; `None` when not forced.
    extra_left: Option<usize>,
}

/// A running group of `n_samples` samples, sample `i` on KV sequence `seqs[i]` of one context
/// (other groups may run on the context's other sequences).
pub(super) struct GroupRun<'p, 'h> {
    params: &'p RolloutParams,
    plan: &'p RolloutPlan,
    answer_key: AnswerKey,
    hooks: RolloutHooks<'h>,
    seqs: Vec<i32>,
    samples: Vec<SampleState>,
    tally: VoteTally,
    finish_order: Vec<usize>,
    total_generated: usize,
    deadline: Option<Instant>,
    /// `</think>`, as a stop-string list.
    think_end: Vec<String>,
    /// The caller cancelled (flag, callback or an aborted decode).
    pub cancelled: bool,
    stopped_by_consensus: bool,
}

const THINK_END: &str = "</think>";

impl<'p, 'h> GroupRun<'p, 'h> {
    /// A group whose prompt of `prompt_len` tokens is being evaluated on `seqs[0]`; its samples
    /// draw their first token once [`GroupRun::prompt_done`] names the prompt's logits. Sample
    /// `i` is seeded `seed + i`; the deadline counts from `start`.
    pub fn new(
        params: &'p RolloutParams,
        plan: &'p RolloutPlan,
        answer_key: AnswerKey,
        hooks: RolloutHooks<'h>,
        seqs: Vec<i32>,
        prompt_len: usize,
        start: Instant,
    ) -> Result<Self> {
        if seqs.len() != params.n_samples {
            return Err(Error::new(
                ErrorCode::Internal,
                "one KV sequence per sample is needed",
            ));
        }
        let samples = (0..params.n_samples)
            .map(|s| {
                Ok(SampleState {
                    sampler: Sampler::new(
                        &params.sampling,
                        params.sampling.seed as u64 + s as u64,
                    )?,
                    tokens: Vec::new(),
                    logprobs: Vec::new(),
                    bytes: Vec::new(),
                    pos: prompt_len as i32,
                    logits_idx: None,
                    finish: None,
                    cut_by_group: false,
                    sampled: 0,
                    thinking_closed: false,
                    forced_tokens: 0,
                    extra_left: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut run = GroupRun {
            params,
            plan,
            answer_key,
            hooks,
            seqs,
            samples,
            tally: VoteTally::new(),
            finish_order: Vec::with_capacity(params.n_samples),
            total_generated: 0,
            deadline: params
                .deadline_ms
                .map(|ms| start + Duration::from_millis(ms)),
            think_end: vec![THINK_END.to_string()],
            cancelled: false,
            stopped_by_consensus: false,
        };
        run.cancelled = run.cancel_requested();
        Ok(run)
    }

    /// The prompt is in the KV cache of every sample's sequence and its last token's logits are
    /// batch entry `idx`: every sample draws its first token from them.
    pub fn prompt_done(&mut self, idx: usize) {
        for st in &mut self.samples {
            st.logits_idx = Some(idx);
        }
    }

    /// The KV sequences of the samples.
    pub fn seqs(&self) -> &[i32] {
        &self.seqs
    }

    /// Maps every queued logits entry through `map` (old batch index → new one) after the
    /// batch was compacted; entries that were dropped lose their index.
    pub fn remap_logits(&mut self, map: &[Option<usize>]) {
        for st in &mut self.samples {
            st.logits_idx = st.logits_idx.and_then(|i| map.get(i).copied().flatten());
        }
    }

    /// True when the caller's cancel flag is set.
    pub fn cancel_requested(&self) -> bool {
        self.hooks
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// Samples still running.
    pub fn running(&self) -> usize {
        self.samples.iter().filter(|s| s.finish.is_none()).count()
    }

    /// The draw jobs of the running samples (each takes the sample's pending logits entry),
    /// tagged with `group`, the group's index in the caller's list.
    pub fn draw_jobs(&mut self, group: usize) -> Result<Vec<DrawJob<'_>>> {
        let mut jobs = Vec::new();
        for (s, st) in self.samples.iter_mut().enumerate() {
            if st.finish.is_some() {
                continue;
            }
            let logits_idx = st
                .logits_idx
                .take()
                .ok_or_else(|| Error::new(ErrorCode::Internal, "sample without logits"))?;
            jobs.push(DrawJob {
                group,
                sample: s,
                sampler: &mut st.sampler,
                logits_idx,
                n_generated: st.tokens.len(),
            });
        }
        Ok(jobs)
    }

    /// The advance stage: takes each drawn token through the per-sample stop policies (EOS,
    /// stop strings, a closed box, extra tokens after forcing, `max_tokens`, the thinking
    /// budget with or without forcing), streams it, and queues the next decode of every sample
    /// that goes on into `batch`. Finished samples vote and leave the KV cache.
    pub fn advance(
        &mut self,
        ctx: &mut Context,
        batch: &mut Batch,
        draws: impl Iterator<Item = (usize, Draw)>,
    ) -> Result<()> {
        let model = ctx.model().clone();
        for (s, (tok, lp)) in draws {
            let finish = self.advance_sample(&model, batch, s, tok, lp)?;
            let seq = self.seqs[s];
            let st = &mut self.samples[s];
            match finish {
                Some(reason) => {
                    // A sample that was forced always reports `forced`, whatever ended it.
                    let reason = if st.extra_left.is_some() {
                        FinishReason::Forced
                    } else {
                        reason
                    };
                    st.finish = Some(reason);
                    st.logits_idx = None;
                    self.finish_order.push(s);
                    if let Some(a) = (self.answer_key)(&String::from_utf8_lossy(&st.bytes)) {
                        self.tally.add(&a);
                    }
                    ctx.remove_sequence(seq)?;
                }
                None if st.logits_idx.is_some() => {} // queued by budget forcing
                None => {
                    st.logits_idx = Some(batch.push(tok, st.pos, seq, true)?);
                    st.pos += 1;
                }
            }
        }
        Ok(())
    }

    /// One drawn token of sample `s`: records it, streams it, and returns why the sample ends
    /// now, if it does. Budget forcing queues the sampled and the forced tokens itself and
    /// leaves the sample's logits entry set when the sample goes on.
    fn advance_sample(
        &mut self,
        model: &Model,
        batch: &mut Batch,
        s: usize,
        tok: Token,
        lp: f32,
    ) -> Result<Option<FinishReason>> {
        let params = self.params;
        let st = &mut self.samples[s];
        st.tokens.push(tok);
        st.logprobs.push(lp);
        st.sampled += 1;
        self.total_generated += 1;
        if !params.ignore_eos && model.is_eog(tok) {
            return Ok(Some(FinishReason::Eos));
        }
        let piece = model.token_bytes(tok, true);
        st.bytes.extend_from_slice(&piece);
        let n_generated = st.tokens.len();
        self.stream(s, tok, &piece, lp, n_generated, false);
        let st = &mut self.samples[s];
        if !st.thinking_closed && contains_new_stop(&st.bytes, piece.len(), &self.think_end) {
            st.thinking_closed = true;
        }
        if contains_new_stop(&st.bytes, piece.len(), &params.stop_strings)
            || (params.stop_at_boxed && piece.contains(&b'}') && boxed_closed(&st.bytes))
        {
            return Ok(Some(FinishReason::Stop));
        }
        if let Some(left) = st.extra_left.as_mut() {
            *left = left.saturating_sub(1);
            return Ok((*left == 0).then_some(FinishReason::Forced));
        }
        if st.sampled >= params.max_tokens {
            return Ok(Some(FinishReason::Length));
        }
        let over_budget = params
            .thinking_budget
            .is_some_and(|b| st.sampled >= b && !st.thinking_closed);
        if !over_budget {
            return Ok(None);
        }
        match &params.budget_forcing {
            Some(f) => self.force(model, batch, s, tok, f.extra_tokens),
            None => Ok(Some(FinishReason::Budget)),
        }
    }

    /// Budget forcing for sample `s`, whose last sampled token is `tok`: appends the forced
    /// text (streamed, flagged as forced), then either ends the sample (no extra tokens
    /// allowed, or the forced text already stops it) or queues the sampled and forced tokens
    /// so that the next token is sampled after the forced text.
    fn force(
        &mut self,
        model: &Model,
        batch: &mut Batch,
        s: usize,
        tok: Token,
        extra_tokens: usize,
    ) -> Result<Option<FinishReason>> {
        let forcing = &self.plan.forcing;
        let mut forced_bytes = 0usize;
        for &ft in forcing {
            let piece = model.token_bytes(ft, true);
            let st = &mut self.samples[s];
            st.tokens.push(ft);
            st.logprobs.push(0.0);
            st.bytes.extend_from_slice(&piece);
            forced_bytes += piece.len();
            let n_generated = st.tokens.len();
            self.stream(s, ft, &piece, 0.0, n_generated, true);
        }
        self.total_generated += forcing.len();
        let params = self.params;
        let st = &mut self.samples[s];
        st.forced_tokens = forcing.len();
        st.thinking_closed = true;
        st.extra_left = Some(extra_tokens);
        let forced_text_stops = params.stop_at_boxed && boxed_closed(&st.bytes)
            || contains_new_stop(&st.bytes, forced_bytes, &params.stop_strings);
        if extra_tokens == 0 || forced_text_stops {
            return Ok(Some(FinishReason::Forced));
        }
        // Decode the sampled token, then the forced text; the next token is sampled from the
        // logits after the forced text.
        let seq = self.seqs[s];
        batch.push(tok, st.pos, seq, false)?;
        st.pos += 1;
        for (j, &ft) in forcing.iter().enumerate() {
            let i = batch.push(ft, st.pos, seq, j + 1 == forcing.len())?;
            st.pos += 1;
            st.logits_idx = Some(i);
        }
        Ok(None)
    }

    /// Passes one token to the streaming callback; a `false` answer cancels the group.
    fn stream(
        &mut self,
        s: usize,
        token: Token,
        piece: &[u8],
        logprob: f32,
        n: usize,
        forced: bool,
    ) {
        if let Some(cb) = self.hooks.on_token.as_mut() {
            let ev = TokenEvent {
                sample: s,
                token,
                piece,
                logprob,
                n_generated: n,
                forced,
            };
            if !cb(&ev) {
                self.cancelled = true;
            }
        }
    }

    /// The group-stop stage: a cancel, consensus, the group token budget or the deadline ends
    /// every running sample with that reason. Returns whether the group stopped.
    pub fn group_stop(&mut self) -> bool {
        self.cancelled = self.cancelled || self.cancel_requested();
        let reason = if self.cancelled {
            Some(FinishReason::Cancelled)
        } else if consensus_reached(&self.params.consensus, &self.tally, self.running()) {
            self.stopped_by_consensus = true;
            Some(FinishReason::Consensus)
        } else if self
            .params
            .group_token_budget
            .is_some_and(|b| self.total_generated >= b)
        {
            Some(FinishReason::Budget)
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            Some(FinishReason::Deadline)
        } else {
            None
        };
        match reason {
            Some(r) => {
                self.cut_running(r);
                true
            }
            None => false,
        }
    }

    /// Ends every running sample with `reason` (a group decision), in sample order.
    pub fn cut_running(&mut self, reason: FinishReason) {
        for (s, st) in self.samples.iter_mut().enumerate() {
            if st.finish.is_none() {
                st.finish = Some(reason);
                st.cut_by_group = true;
                self.finish_order.push(s);
            }
        }
    }

    /// The finalize stage: the final vote, in the order samples finished, over the samples
    /// that ended on their own; samples cut by a group decision vote only when no finished
    /// sample gave an answer.
    pub fn finalize(
        self,
        prompt_tokens: usize,
        prompt_seconds: f64,
        start: Instant,
    ) -> Result<GroupResult> {
        let mut final_tally = VoteTally::new();
        let mut cut_tally = VoteTally::new();
        let n = self.samples.len();
        let mut samples: Vec<Option<SampleResult>> = (0..n).map(|_| None).collect();
        let (mut tokens_generated, mut tokens_fixed_budget) = (0usize, 0usize);
        let mut states: Vec<Option<SampleState>> = self.samples.into_iter().map(Some).collect();
        for &s in &self.finish_order {
            let Some(st) = states[s].take() else {
                return Err(Error::new(ErrorCode::Internal, "a sample finished twice"));
            };
            let text = String::from_utf8_lossy(&st.bytes).into_owned();
            let answer = (self.answer_key)(&text);
            let answer_display = answer.as_ref().map(|key| {
                extract_answer(&text, &self.params.answer).unwrap_or_else(|| key.clone())
            });
            if let Some(a) = &answer {
                if st.cut_by_group {
                    cut_tally.add(a);
                } else {
                    final_tally.add(a);
                }
            }
            tokens_generated += st.tokens.len();
            tokens_fixed_budget += if st.cut_by_group {
                self.plan.per_sample.max(st.tokens.len())
            } else {
                st.tokens.len()
            };
            samples[s] = Some(SampleResult {
                text,
                tokens: st.tokens,
                logprobs: st.logprobs,
                finish_reason: st.finish.unwrap_or(FinishReason::Cancelled),
                answer,
                answer_display,
                forced_tokens: st.forced_tokens,
            });
        }
        if final_tally.leader().is_none() {
            final_tally = cut_tally;
        }
        let samples = samples
            .into_iter()
            .map(|s| s.ok_or_else(|| Error::new(ErrorCode::Internal, "sample never finished")))
            .collect::<Result<Vec<_>>>()?;
        let votes = final_tally.ranked();
        Ok(GroupResult {
            prompt_tokens,
            samples,
            voted_answer: votes.first().map(|v| v.answer.clone()),
            votes,
            tokens_generated,
            tokens_fixed_budget,
            stopped_by_consensus: self.stopped_by_consensus,
            cancelled: self.cancelled,
            wall_seconds: start.elapsed().as_secs_f64(),
            prompt_seconds,
        })
    }
}
