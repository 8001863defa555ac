//! One group's state while it runs: per-sample state, the advance stage (a drawn token through
//! the per-sample stop policies and the stream), answer probes, the group-stop stage (which
//! also starts samples held back by a warm-up or an ESC window), and the final vote.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::answer_key::AnswerKey;
use super::confidence::{percentile, ConfidenceTrack, SampleConfidence};
use super::draw::{Draw, DrawJob};
use super::params::{RolloutParams, ThresholdSource, VoteWeight};
use super::plan::RolloutPlan;
use super::result::{FinishReason, GroupResult, ProbeRecord, SampleResult};
use super::rollout::{RolloutHooks, TokenEvent};
use super::sampling::{argmax, token_confidence, Sampler};
use super::stop::{boxed_closed, contains_new_stop};
use super::vote::{consensus_reached, VoteTally};
use crate::answer::extract_answer;
use crate::engine::{Batch, Context, Model, Token};
use crate::error::{Error, ErrorCode, Result};

/// A probe in flight: a copy of the sample's sequence decoding the probe text and then greedy
/// tokens.
struct ProbeRun {
    /// Sampled tokens of the sample when the probe was taken.
    at: usize,
    /// Next KV position on the probe sequence.
    pos: i32,
    logits_idx: Option<usize>,
    generated: usize,
    bytes: Vec<u8>,
}

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
    /// The next draw comes from the group's saved prompt row (a late start).
    from_saved: bool,
    /// Drawing has begun (false while held back by a warm-up or an ESC window).
    started: bool,
    finish: Option<FinishReason>,
    /// Cut by a group decision (consensus, deadline, cancel, group budget).
    cut_by_group: bool,
    /// Sampled tokens (forced ones excluded).
    sampled: usize,
    thinking_closed: bool,
    forced_tokens: usize,
    /// Tokens still allowed after budget forcing; `None` when not forced.
    extra_left: Option<usize>,
    token_confidence: Vec<f32>,
    track: ConfidenceTrack,
    top_tokens: Vec<Token>,
    top_logprobs: Vec<f32>,
    probe: Option<ProbeRun>,
    probes: Vec<ProbeRecord>,
    probe_tokens: usize,
    /// The answer the probes agreed on (key, display).
    probe_answer: Option<(String, String)>,
    /// Its window confidence is checked against the threshold.
    gated: bool,
}

/// A running group of `n_samples` samples, sample `i` on KV sequence `seqs[i]` of one context
/// (other groups may run on the context's other sequences); with probes, sample `i`'s probe
/// runs on `seqs[n_samples + i]`.
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
    probe_total: usize,
    deadline: Option<Instant>,
    /// `</think>`, as a stop-string list.
    think_end: Vec<String>,
    /// The caller cancelled (flag, callback or an aborted decode).
    pub cancelled: bool,
    stopped_by_consensus: bool,
    /// The confidence threshold, once known.
    threshold: Option<f64>,
    /// The prompt's last logits row, kept while samples wait to start.
    prompt_logits: Option<Vec<f32>>,
    /// ESC windows whose agreement has been checked.
    esc_checked: usize,
    /// Scratch for the stream's top-k arrays.
    scratch_tokens: Vec<Token>,
    scratch_logprobs: Vec<f32>,
}

const THINK_END: &str = "</think>";

impl<'p, 'h> GroupRun<'p, 'h> {
    /// A group whose prompt of `prompt_len` tokens is being evaluated on `seqs[0]`; its samples
    /// draw their first token once [`GroupRun::prompt_done`] names the prompt's logits. Sample
    /// `i` is seeded `seed + i`; the deadline counts from `start`. `seqs` holds
    /// `params.sequences_needed()` ids.
    pub fn new(
        params: &'p RolloutParams,
        plan: &'p RolloutPlan,
        answer_key: AnswerKey,
        hooks: RolloutHooks<'h>,
        seqs: Vec<i32>,
        prompt_len: usize,
        start: Instant,
    ) -> Result<Self> {
        if seqs.len() != params.sequences_needed() {
            return Err(Error::new(
                ErrorCode::Internal,
                "one KV sequence per sample (and per probe) is needed",
            ));
        }
        let gate_all = matches!(
            params.confidence_stop.as_ref().map(|c| &c.threshold),
            Some(ThresholdSource::File { .. } | ThresholdSource::Fixed { .. })
        );
        let warmup = warmup_samples(params);
        let samples = (0..params.n_samples)
            .map(|s| {
                Ok(SampleState {
                    sampler: Sampler::new(
                        &params.sampling,
                        params.sampling.seed as u64 + s as u64,
                    )?
                    .with_top_logprobs(params.confidence.top_k),
                    tokens: Vec::new(),
                    logprobs: Vec::new(),
                    bytes: Vec::new(),
                    pos: prompt_len as i32,
                    logits_idx: None,
                    from_saved: false,
                    started: false,
                    finish: None,
                    cut_by_group: false,
                    sampled: 0,
                    thinking_closed: false,
                    forced_tokens: 0,
                    extra_left: None,
                    token_confidence: Vec::new(),
                    track: ConfidenceTrack::new(params.confidence.window),
                    top_tokens: Vec::new(),
                    top_logprobs: Vec::new(),
                    probe: None,
                    probes: Vec::new(),
                    probe_tokens: 0,
                    probe_answer: None,
                    gated: gate_all || warmup.is_some_and(|w| s >= w),
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
            probe_total: 0,
            deadline: params
                .deadline_ms
                .map(|ms| start + Duration::from_millis(ms)),
            think_end: vec![THINK_END.to_string()],
            cancelled: false,
            stopped_by_consensus: false,
            threshold: plan.threshold,
            prompt_logits: None,
            esc_checked: 0,
            scratch_tokens: Vec::new(),
            scratch_logprobs: Vec::new(),
        };
        run.cancelled = run.cancel_requested();
        Ok(run)
    }

    /// The prompt is in the KV cache of every sample's sequence and its last token's logits are
    /// batch entry `idx` of `ctx`: the samples allowed to start draw their first token from
    /// them; the row is kept for the samples that start later.
    pub fn prompt_done(&mut self, ctx: &Context, idx: usize) -> Result<()> {
        let first = self.startable();
        if first < self.samples.len() {
            self.prompt_logits = Some(ctx.logits(idx)?.to_vec());
        }
        for st in &mut self.samples[..first] {
            st.logits_idx = Some(idx);
            st.started = true;
        }
        Ok(())
    }

    /// The KV sequences of the group (samples, then probes).
    pub fn seqs(&self) -> &[i32] {
        &self.seqs
    }

    /// The KV sequences of the samples (the prompt is shared with these).
    pub fn sample_seqs(&self) -> &[i32] {
        &self.seqs[..self.samples.len()]
    }

    /// Maps every queued logits entry through `map` (old batch index → new one) after the
    /// batch was compacted; entries that were dropped lose their index.
    pub fn remap_logits(&mut self, map: &[Option<usize>]) {
        let remap = |i: Option<usize>| i.and_then(|i| map.get(i).copied().flatten());
        for st in &mut self.samples {
            if !st.from_saved {
                st.logits_idx = remap(st.logits_idx);
            }
            if let Some(p) = st.probe.as_mut() {
                p.logits_idx = remap(p.logits_idx);
            }
        }
    }

    /// True when the caller's cancel flag is set.
    pub fn cancel_requested(&self) -> bool {
        self.hooks
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// Samples not finished (running or waiting to start).
    pub fn running(&self) -> usize {
        self.samples.iter().filter(|s| s.finish.is_none()).count()
    }

    /// The draw jobs of the started, running samples (each takes the sample's pending logits
    /// entry), tagged with `group`, the group's index in the caller's list.
    pub fn draw_jobs(&mut self, group: usize) -> Result<Vec<DrawJob<'_>>> {
        let mut jobs = Vec::new();
        let saved = self.prompt_logits.as_deref();
        for (s, st) in self.samples.iter_mut().enumerate() {
            if st.finish.is_some() || !st.started {
                continue;
            }
            let from_saved = std::mem::take(&mut st.from_saved);
            let logits_idx = if from_saved {
                0
            } else {
                st.logits_idx
                    .take()
                    .ok_or_else(|| Error::new(ErrorCode::Internal, "sample without logits"))?
            };
            jobs.push(DrawJob {
                group,
                sample: s,
                sampler: &mut st.sampler,
                logits_idx,
                saved: if from_saved {
                    Some(
                        saved.ok_or_else(|| {
                            Error::new(ErrorCode::Internal, "no saved prompt logits")
                        })?,
                    )
                } else {
                    None
                },
                n_generated: st.tokens.len(),
            });
        }
        Ok(jobs)
    }

    /// The advance stage: first the probes in flight take their greedy step (a probe that
    /// completes may stop its sample), then each drawn token goes through the per-sample stop
    /// policies (EOS, stop strings, a closed box, extra tokens after forcing, `max_tokens`,
    /// the confidence gate, the thinking budget with or without forcing), is streamed, and
    /// queues the sample's next decode (and a new probe) into `batch`. Finished samples vote
    /// and leave the KV cache.
    pub fn advance(
        &mut self,
        ctx: &mut Context,
        batch: &mut Batch,
        draws: impl Iterator<Item = (usize, Draw)>,
    ) -> Result<()> {
        let model = ctx.model().clone();
        if self.params.probe.is_some() {
            self.advance_probes(ctx, batch, &model)?;
        }
        for (s, (tok, lp)) in draws {
            if self.samples[s].finish.is_some() {
                continue; // stopped by its probe this step
            }
            let finish = self.advance_sample(&model, batch, s, tok, lp)?;
            let seq = self.seqs[s];
            let st = &mut self.samples[s];
            match finish {
                Some(reason) => {
                    // A sample that was forced always reports `forced`, whatever ended it.
                    let reason = if st.extra_left.is_some() && reason != FinishReason::LowConfidence
                    {
                        FinishReason::Forced
                    } else {
                        reason
                    };
                    self.finish_sample(ctx, s, reason)?;
                }
                None if st.logits_idx.is_some() => {} // queued by budget forcing
                None => {
                    st.logits_idx = Some(batch.push(tok, st.pos, seq, true)?);
                    st.pos += 1;
                    self.maybe_start_probe(ctx, batch, s, tok)?;
                }
            }
        }
        Ok(())
    }

    /// Ends sample `s` on its own terms with `reason`: it votes (unless gated out) and leaves
    /// the KV cache, with its probe.
    fn finish_sample(&mut self, ctx: &mut Context, s: usize, reason: FinishReason) -> Result<()> {
        let weight = self.vote_weight(s);
        let st = &mut self.samples[s];
        st.finish = Some(reason);
        st.logits_idx = None;
        self.finish_order.push(s);
        if reason != FinishReason::LowConfidence {
            let answer = match &st.probe_answer {
                Some((key, _)) => Some(key.clone()),
                None => (self.answer_key)(&String::from_utf8_lossy(&st.bytes)),
            };
            if let Some(a) = answer {
                self.tally.add_weighted(&a, weight);
            }
        }
        ctx.remove_sequence(self.seqs[s])?;
        self.drop_probe(ctx, s)
    }

    /// Removes sample `s`'s probe in flight, if any.
    fn drop_probe(&mut self, ctx: &mut Context, s: usize) -> Result<()> {
        if self.samples[s].probe.take().is_some() {
            ctx.remove_sequence(self.seqs[self.samples.len() + s])?;
        }
        Ok(())
    }

    /// The vote weight of sample `s` by `vote.weight` (1 when votes are not weighted).
    fn vote_weight(&self, s: usize) -> f64 {
        let c = self.samples[s].track.summary(self.params.confidence.tail);
        weight_of(self.params.vote.weight, c.as_ref())
    }

    /// Starts a probe for sample `s`, whose token `tok` was just queued, when one is due: its
    /// sequence is copied to the probe sequence, and `tok` and the probe text are queued there.
    fn maybe_start_probe(
        &mut self,
        ctx: &mut Context,
        batch: &mut Batch,
        s: usize,
        tok: Token,
    ) -> Result<()> {
        let Some(p) = &self.params.probe else {
            return Ok(());
        };
        let st = &self.samples[s];
        if st.probe.is_some() || st.extra_left.is_some() || st.sampled % p.every != 0 {
            return Ok(());
        }
        let (seq, probe_seq) = (self.seqs[s], self.seqs[self.samples.len() + s]);
        let pos = st.pos - 1; // `tok` sits at pos - 1 on the sample's sequence
        ctx.remove_sequence(probe_seq)?;
        ctx.copy_sequence(seq, probe_seq)?;
        batch.push(tok, pos, probe_seq, false)?;
        let text = &self.plan.probe_text;
        let mut idx = 0;
        for (j, &t) in text.iter().enumerate() {
            idx = batch.push(t, pos + 1 + j as i32, probe_seq, j + 1 == text.len())?;
        }
        let st = &mut self.samples[s];
        st.probe_tokens += 1 + text.len();
        self.probe_total += 1 + text.len();
        st.probe = Some(ProbeRun {
            at: st.sampled,
            pos: pos + 1 + text.len() as i32,
            logits_idx: Some(idx),
            generated: 0,
            bytes: Vec::new(),
        });
        Ok(())
    }

    /// One greedy step of every probe in flight; a probe that completes records its answer,
    /// and `agree` equal answers in a row stop its sample (finish reason `probe`).
    fn advance_probes(
        &mut self,
        ctx: &mut Context,
        batch: &mut Batch,
        model: &Model,
    ) -> Result<()> {
        let Some(p) = self.params.probe.as_ref() else {
            return Ok(());
        };
        let n = self.samples.len();
        for s in 0..n {
            let Some(idx) = self.samples[s]
                .probe
                .as_mut()
                .and_then(|r| r.logits_idx.take())
            else {
                continue;
            };
            let tok = argmax(ctx.logits(idx)?);
            let st = &mut self.samples[s];
            let Some(run) = st.probe.as_mut() else {
                continue;
            };
            run.generated += 1;
            st.probe_tokens += 1;
            self.probe_total += 1;
            let eog = model.is_eog(tok);
            if !eog {
                run.bytes.extend_from_slice(&model.token_bytes(tok, true));
            }
            let mut text = p.text.clone().into_bytes();
            text.extend_from_slice(&run.bytes);
            let done = eog || run.generated >= p.max_tokens || boxed_closed(&text);
            if !done {
                run.logits_idx = Some(batch.push(tok, run.pos, self.seqs[n + s], true)?);
                run.pos += 1;
                continue;
            }
            let at = run.at;
            self.drop_probe(ctx, s)?;
            let text = String::from_utf8_lossy(&text).into_owned();
            let answer = (self.answer_key)(&text);
            let st = &mut self.samples[s];
            st.probes.push(ProbeRecord {
                at,
                done: st.sampled,
                answer: answer.clone(),
            });
            let k = p.agree;
            let agreed = st.probes.len() >= k
                && st.probes[st.probes.len() - k..].iter().all(|r| {
                    r.answer.is_some() && r.answer == st.probes[st.probes.len() - 1].answer
                });
            if agreed && st.finish.is_none() {
                if let Some(key) = answer {
                    let display = extract_answer(&text, &self.params.answer).unwrap_or(key.clone());
                    st.probe_answer = Some((key, display));
                    self.finish_sample(ctx, s, FinishReason::Probe)?;
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
        let k = params.confidence.top_k;
        let st = &mut self.samples[s];
        st.tokens.push(tok);
        st.logprobs.push(lp);
        st.sampled += 1;
        let mut conf = 0.0;
        self.scratch_tokens.clear();
        self.scratch_logprobs.clear();
        if k > 0 {
            let top = st.sampler.top_logprobs();
            conf = token_confidence(top);
            st.token_confidence.push(conf);
            st.track.push(conf);
            self.scratch_tokens.extend(top.iter().map(|e| e.1));
            self.scratch_logprobs.extend(top.iter().map(|e| e.0));
            if params.confidence.keep_top_logprobs {
                st.top_tokens.extend(top.iter().map(|e| e.1));
                st.top_logprobs.extend(top.iter().map(|e| e.0));
                for _ in top.len()..k {
                    st.top_tokens.push(-1);
                    st.top_logprobs.push(0.0);
                }
            }
        }
        self.total_generated += 1;
        if !params.ignore_eos && model.is_eog(tok) {
            return Ok(Some(FinishReason::Eos));
        }
        let piece = model.token_bytes(tok, true);
        st.bytes.extend_from_slice(&piece);
        let n_generated = st.tokens.len();
        self.stream(s, tok, &piece, lp, conf, n_generated, false);
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
        if st.gated {
            if let (Some(t), Some(w)) = (self.threshold, st.track.current_window()) {
                if (w as f64) < t {
                    return Ok(Some(FinishReason::LowConfidence));
                }
            }
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
        let k = self.params.confidence.top_k;
        let keep_top = self.params.confidence.keep_top_logprobs;
        let mut forced_bytes = 0usize;
        self.scratch_tokens.clear();
        self.scratch_logprobs.clear();
        for &ft in forcing {
            let piece = model.token_bytes(ft, true);
            let st = &mut self.samples[s];
            st.tokens.push(ft);
            st.logprobs.push(0.0);
            if k > 0 {
                st.token_confidence.push(0.0);
                if keep_top {
                    st.top_tokens.extend(std::iter::repeat_n(-1, k));
                    st.top_logprobs.extend(std::iter::repeat_n(0.0, k));
                }
            }
            st.bytes.extend_from_slice(&piece);
            forced_bytes += piece.len();
            let n_generated = st.tokens.len();
            self.stream(s, ft, &piece, 0.0, 0.0, n_generated, true);
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

    /// Passes one token to the streaming callback; a `false` answer cancels the group. The
    /// top-k arrays are the scratch buffers (empty for forced tokens).
    #[allow(clippy::too_many_arguments)]
    fn stream(
        &mut self,
        s: usize,
        token: Token,
        piece: &[u8],
        logprob: f32,
        confidence: f32,
        n: usize,
        forced: bool,
    ) {
        if let Some(cb) = self.hooks.on_token.as_mut() {
            let (top_tokens, top_logprobs): (&[Token], &[f32]) = if forced {
                (&[], &[])
            } else {
                (&self.scratch_tokens, &self.scratch_logprobs)
            };
            let ev = TokenEvent {
                sample: s,
                token,
                piece,
                logprob,
                n_generated: n,
                forced,
                confidence,
                top_tokens,
                top_logprobs,
            };
            if !cb(&ev) {
                self.cancelled = true;
            }
        }
    }

    /// The group-stop stage: a cancel, consensus, an agreeing ESC window, the group token
    /// budget or the deadline ends every running sample with that reason. Returns whether the
    /// group stopped; when it goes on, samples whose warm-up or window is over start (they draw
    /// from the saved prompt row next step).
    pub fn group_stop(&mut self) -> bool {
        self.cancelled = self.cancelled || self.cancel_requested();
        let reason = if self.cancelled {
            Some(FinishReason::Cancelled)
        } else if consensus_reached(&self.params.consensus, &self.tally, self.running())
            || self.esc_window_agrees()
        {
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
            None => {
                self.start_waiting();
                false
            }
        }
    }

    /// Index of the first sample that may not start yet (`n_samples` when all may): the
    /// warm-up holds the gated samples until the threshold is known; ESC holds every window
    /// until the one before it has been checked.
    fn startable(&self) -> usize {
        let n = self.samples.len();
        let mut limit = n;
        if self.threshold.is_none() {
            if let Some(w) = warmup_samples(self.params) {
                limit = limit.min(w);
            }
        }
        if let Some(e) = &self.params.esc {
            limit = limit.min((self.esc_checked + 1) * e.window);
        }
        limit
    }

    /// Sets the warm-up threshold once every warm-up sample has finished, and starts the
    /// samples that may now run.
    fn start_waiting(&mut self) {
        if self.threshold.is_none() {
            if let (Some(w), Some(ThresholdSource::Warmup { percentile: p, .. })) = (
                warmup_samples(self.params),
                self.params.confidence_stop.as_ref().map(|c| &c.threshold),
            ) {
                if self.samples[..w].iter().all(|s| s.finish.is_some()) {
                    let lows: Vec<f64> = self.samples[..w]
                        .iter()
                        .filter_map(|s| s.track.summary(1).map(|c| c.lowest_window as f64))
                        .collect();
                    // No warm-up sample sampled a token: nothing to gate with.
                    self.threshold = Some(percentile(&lows, *p).unwrap_or(f64::NEG_INFINITY));
                }
            }
        }
        let limit = self.startable();
        for st in &mut self.samples[..limit] {
            if !st.started && st.finish.is_none() {
                st.started = true;
                st.from_saved = true;
            }
        }
        // The saved row goes once every sample has drawn its first token from it.
        if self
            .samples
            .iter()
            .all(|s| (s.started && !s.from_saved) || s.finish.is_some())
        {
            self.prompt_logits = None;
        }
    }

    /// ESC: true when the next unchecked window has finished and all its samples gave the
    /// same answer (marks the window checked either way).
    fn esc_window_agrees(&mut self) -> bool {
        let Some(e) = &self.params.esc else {
            return false;
        };
        let (lo, hi) = (
            self.esc_checked * e.window,
            (self.esc_checked + 1) * e.window,
        );
        if hi > self.samples.len() || self.samples[lo..hi].iter().any(|s| s.finish.is_none()) {
            return false;
        }
        self.esc_checked += 1;
        let answers: Vec<Option<String>> = (lo..hi).map(|s| self.final_answer(s)).collect();
        hi < self.samples.len() && answers[0].is_some() && answers.iter().all(|a| *a == answers[0])
    }

    /// The answer key sample `s` votes with (its probes' answer when they stopped it).
    fn final_answer(&self, s: usize) -> Option<String> {
        let st = &self.samples[s];
        match &st.probe_answer {
            Some((key, _)) => Some(key.clone()),
            None => (self.answer_key)(&String::from_utf8_lossy(&st.bytes)),
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
    /// that ended on their own (the most confident `vote.top_percent` % of them, weighted by
    /// `vote.weight`); samples gated out by low confidence or cut by a group decision vote only
    /// when no such sample gave an answer.
    pub fn finalize(
        self,
        prompt_tokens: usize,
        prompt_seconds: f64,
        start: Instant,
    ) -> Result<GroupResult> {
        let n = self.samples.len();
        let tail = self.params.confidence.tail;
        let vote = &self.params.vote;
        let mut samples: Vec<Option<SampleResult>> = (0..n).map(|_| None).collect();
        let (mut tokens_generated, mut tokens_fixed_budget) = (0usize, 0usize);
        // (sample, answer, confidence summary, votes first-class)
        let mut ballots: Vec<(String, Option<SampleConfidence>, bool)> = Vec::new();
        let answers: Vec<Option<String>> = (0..n).map(|s| self.final_answer(s)).collect();
        let mut states: Vec<Option<SampleState>> = self.samples.into_iter().map(Some).collect();
        for &s in &self.finish_order {
            let Some(st) = states[s].take() else {
                return Err(Error::new(ErrorCode::Internal, "a sample finished twice"));
            };
            let text = String::from_utf8_lossy(&st.bytes).into_owned();
            let answer = answers[s].clone();
            let answer_display = match &st.probe_answer {
                Some((_, display)) => Some(display.clone()),
                None => answer.as_ref().map(|key| {
                    extract_answer(&text, &self.params.answer).unwrap_or_else(|| key.clone())
                }),
            };
            let finish = st.finish.unwrap_or(FinishReason::Cancelled);
            let confidence = st.track.summary(tail);
            if let Some(a) = &answer {
                let first_class = !st.cut_by_group && finish != FinishReason::LowConfidence;
                ballots.push((a.clone(), confidence, first_class));
            }
            tokens_generated += st.tokens.len();
            // Samples stopped early (by the group, the confidence gate or their probes) count
            // what they could have generated.
            let stopped_early = st.cut_by_group
                || matches!(finish, FinishReason::LowConfidence | FinishReason::Probe);
            tokens_fixed_budget += if stopped_early {
                self.plan.per_sample.max(st.tokens.len())
            } else {
                st.tokens.len()
            };
            samples[s] = Some(SampleResult {
                text,
                tokens: st.tokens,
                logprobs: st.logprobs,
                finish_reason: finish,
                answer,
                answer_display,
                forced_tokens: st.forced_tokens,
                token_confidence: st.token_confidence,
                confidence,
                top_tokens: st.top_tokens,
                top_logprobs: st.top_logprobs,
                probes: st.probes,
                probe_tokens: st.probe_tokens,
            });
        }
        let first_class = ballots.iter().any(|b| b.2);
        let mut voters: Vec<&(String, Option<SampleConfidence>, bool)> =
            ballots.iter().filter(|b| b.2 == first_class).collect();
        if vote.top_percent < 100.0 && !voters.is_empty() {
            let by = if vote.weight == VoteWeight::None {
                VoteWeight::LowestWindow
            } else {
                vote.weight
            };
            let keep = ((voters.len() as f64 * vote.top_percent / 100.0).ceil() as usize).max(1);
            let mut order: Vec<usize> = (0..voters.len()).collect();
            // Most confident first; equal ones keep finishing order.
            order.sort_by(|&a, &b| {
                weight_of(by, voters[b].1.as_ref()).total_cmp(&weight_of(by, voters[a].1.as_ref()))
            });
            let mut kept: Vec<usize> = order[..keep].to_vec();
            kept.sort_unstable();
            voters = kept.into_iter().map(|i| voters[i]).collect();
        }
        let mut final_tally = VoteTally::new();
        for b in voters {
            final_tally.add_weighted(&b.0, weight_of(vote.weight, b.1.as_ref()));
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
            probe_tokens: self.probe_total,
            confidence_threshold: self.threshold,
            tokens_fixed_budget,
            stopped_by_consensus: self.stopped_by_consensus,
            cancelled: self.cancelled,
            wall_seconds: start.elapsed().as_secs_f64(),
            prompt_seconds,
        })
    }
}

/// Warm-up samples of a warm-up threshold, if the rollout has one.
fn warmup_samples(params: &RolloutParams) -> Option<usize> {
    match params.confidence_stop.as_ref().map(|c| &c.threshold) {
        Some(ThresholdSource::Warmup { samples, .. }) => Some(*samples),
        _ => None,
    }
}

/// The vote weight of a sample with confidence `c` (1 when `weight` is `None`; 0 for a sample
/// without a confidence when votes are weighted).
fn weight_of(weight: VoteWeight, c: Option<&SampleConfidence>) -> f64 {
    let pick = |f: fn(&SampleConfidence) -> f32| c.map_or(0.0, |c| f(c).max(0.0) as f64);
    match weight {
        VoteWeight::None => 1.0,
        VoteWeight::Mean => pick(|c| c.mean),
        VoteWeight::LowestWindow => pick(|c| c.lowest_window),
        VoteWeight::Tail => pick(|c| c.tail),
    }
}
