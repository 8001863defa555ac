//! The group rollout loop.

use super::answer_key::{verifier_answer_key, AnswerKey};
use super::params::RolloutParams;
use super::result::{FinishReason, GroupResult, SampleResult};
use super::sampling::Sampler;
use super::stop::{boxed_closed, contains_new_stop};
use super::vote::{consensus_reached, VoteTally};
use crate::engine::{Batch, Context, ContextParams, Model, Token};
use crate::error::{Error, ErrorCode, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One generated token, as seen by a streaming callback.
#[derive(Debug)]
pub struct TokenEvent<'a> {
    /// Index of the sample within its group.
    pub sample: usize,
    /// The token id.
    pub token: Token,
    /// The token's bytes (may be part of a UTF-8 sequence).
    pub piece: &'a [u8],
    /// Its log-probability (see [`SampleResult::logprobs`]).
    pub logprob: f32,
    /// Tokens this sample has generated so far, this one included.
    pub n_generated: usize,
}

/// Caller hooks for a rollout. Both are optional.
#[derive(Default)]
pub struct RolloutHooks<'a> {
    /// Called for every generated token (not for end-of-generation tokens); return `false` to
    /// cancel the group. Runs on the thread that runs the rollout.
    #[allow(clippy::type_complexity)]
    pub on_token: Option<&'a mut dyn FnMut(&TokenEvent<'_>) -> bool>,
    /// Set from any thread to cancel; checked between decode steps and inside llama.cpp.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Runs group rollouts on one context.
///
/// Thread-safety: `Send`, not `Sync`; one rollout at a time.
pub struct Generator {
    ctx: Context,
    batch: Batch,
    /// Overrides the verifier's key built from `RolloutParams::answer`.
    custom_key: Option<AnswerKey>,
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

impl Generator {
    /// Creates a generator with its own context on `model`.
    pub fn new(model: Arc<Model>, params: &ContextParams) -> Result<Generator> {
        let ctx = Context::new(model, params)?;
        let batch = Batch::new(ctx.n_batch() as usize);
        Ok(Generator {
            ctx,
            batch,
            custom_key: None,
        })
    }

    /// The underlying context (e.g. to apply adapters).
    pub fn context_mut(&mut self) -> &mut Context {
        &mut self.ctx
    }

    /// The underlying context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Replaces the function that maps completions to answers for voting and consensus
    /// (`None` restores the verifier's key configured by `RolloutParams::answer`).
    pub fn set_answer_key(&mut self, key: Option<AnswerKey>) {
        self.custom_key = key;
    }

    /// Renders `problem` with `params.prompt` and runs a group rollout.
    pub fn solve(
        &mut self,
        problem: &str,
        params: &RolloutParams,
        hooks: RolloutHooks<'_>,
    ) -> Result<GroupResult> {
        let tokens = params.prompt.tokenize(self.ctx.model(), problem)?;
        self.rollout(&tokens, params, hooks)
    }

    /// Runs one group rollout from prompt tokens. Clears the KV cache first.
    ///
    /// Errors: invalid parameters, a context too small for `prompt + n_samples × max_tokens`,
    /// decode failures. Cancellation is not an error: the partial result comes back with
    /// `cancelled` set and the running samples marked [`FinishReason::Cancelled`].
    pub fn rollout(
        &mut self,
        prompt: &[Token],
        params: &RolloutParams,
        mut hooks: RolloutHooks<'_>,
    ) -> Result<GroupResult> {
        let start = Instant::now();
        params.validate()?;
        let Generator {
            ctx,
            batch,
            custom_key,
        } = self;
        let answer_key = custom_key
            .clone()
            .unwrap_or_else(|| verifier_answer_key(params.answer.clone()));
        let model = ctx.model().clone();
        let n = params.n_samples;
        if prompt.is_empty() {
            return Err(Error::invalid("prompt is empty"));
        }
        if n > ctx.n_seq_max() as usize {
            return Err(Error::invalid(format!(
                "n_samples {n} exceeds the context's n_seq_max {}",
                ctx.n_seq_max()
            )));
        }
        let vocab = model.n_vocab() as i32;
        if let Some(&bad) = prompt.iter().find(|&&t| t < 0 || t >= vocab) {
            return Err(Error::invalid(format!(
                "prompt token {bad} is outside the vocabulary (0..{vocab})"
            )));
        }
        let forcing: Vec<Token> = match &params.budget_forcing {
            Some(f) => model.tokenize(&f.text, false, true)?,
            None => Vec::new(),
        };
        let per_sample = params.max_tokens_per_sample(forcing.len());
        // A unified cache holds the prompt once plus every sample; a split one gives each sample
        // a stream of n_ctx_seq cells holding its copy of the prompt.
        let unified = ctx.n_ctx_seq() == ctx.n_ctx();
        let (needed, room, what) = if unified {
            (
                prompt.len() + n * per_sample,
                ctx.n_ctx(),
                "n_ctx".to_string(),
            )
        } else {
            (
                prompt.len() + per_sample,
                ctx.n_ctx_seq(),
                format!(
                    "the per-sequence context {} (n_ctx {} / n_seq_max {})",
                    ctx.n_ctx_seq(),
                    ctx.n_ctx(),
                    ctx.n_seq_max()
                ),
            )
        };
        if needed > room as usize {
            return Err(Error::new(
                ErrorCode::ContextTooSmall,
                format!(
                    "context too small: prompt {} tokens + {} x {per_sample} generated tokens = {needed} > {what}",
                    prompt.len(),
                    if unified { n } else { 1 },
                ),
            ));
        }
        if n * (1 + forcing.len()) > batch_capacity(ctx) {
            return Err(Error::invalid(format!(
                "n_samples x (1 + forced tokens) = {} exceeds n_batch {}",
                n * (1 + forcing.len()),
                ctx.n_batch()
            )));
        }
        let cancel = hooks.cancel.clone();
        let cancelled_now = || {
            cancel
                .as_ref()
                .map(|c| c.load(Ordering::Relaxed))
                .unwrap_or(false)
        };

        ctx.clear_kv();
        ctx.set_abort_flag(cancel.clone());
        let mut result = GroupResult {
            prompt_tokens: prompt.len(),
            samples: Vec::new(),
            votes: Vec::new(),
            voted_answer: None,
            tokens_generated: 0,
            tokens_fixed_budget: 0,
            stopped_by_consensus: false,
            cancelled: false,
            wall_seconds: 0.0,
            prompt_seconds: 0.0,
        };

        // Evaluate the prompt once on sequence 0, then share its cells with every sample.
        let mut last_idx = 0;
        let mut prompt_cancelled = false;
        for (c, chunk) in prompt.chunks(batch_capacity(ctx)).enumerate() {
            batch.clear();
            let base = c * batch_capacity(ctx);
            for (j, &t) in chunk.iter().enumerate() {
                let is_last = base + j + 1 == prompt.len();
                let i = batch.push(t, (base + j) as i32, 0, is_last)?;
                if is_last {
                    last_idx = i;
                }
            }
            match ctx.decode(batch) {
                Ok(()) => {}
                Err(e) if e.code() == ErrorCode::Cancelled => {
                    prompt_cancelled = true;
                    break;
                }
                Err(e) => {
                    ctx.set_abort_flag(None);
                    return Err(e);
                }
            }
        }
        result.prompt_seconds = start.elapsed().as_secs_f64();
        for s in 1..n {
            ctx.copy_sequence(0, s as i32);
        }
        let mut states = Vec::with_capacity(n);
        for s in 0..n {
            states.push(SampleState {
                sampler: Sampler::new(&params.sampling, params.sampling.seed as u64 + s as u64)?,
                tokens: Vec::new(),
                logprobs: Vec::new(),
                bytes: Vec::new(),
                pos: prompt.len() as i32,
                logits_idx: Some(last_idx),
                finish: None,
                cut_by_group: false,
                sampled: 0,
                thinking_closed: false,
                forced_tokens: 0,
                extra_left: None,
            });
        }
        let think_end = vec!["</think>".to_string()];
        let mut tally = VoteTally::new();
        let mut finish_order: Vec<usize> = Vec::with_capacity(n);
        let mut total_generated = 0usize;
        let mut cancelled = prompt_cancelled || cancelled_now();
        let deadline = params
            .deadline_ms
            .map(|ms| start + std::time::Duration::from_millis(ms));

        while !cancelled {
            let draws = draw_all(ctx, &mut states)?;
            batch.clear();
            for (s, st) in states.iter_mut().enumerate() {
                let Some((tok, lp)) = draws[s] else {
                    continue;
                };
                st.tokens.push(tok);
                st.logprobs.push(lp);
                st.sampled += 1;
                total_generated += 1;
                let mut finish = None;
                if !params.ignore_eos && model.is_eog(tok) {
                    finish = Some(FinishReason::Eos);
                } else {
                    let piece = model.token_bytes(tok, true);
                    st.bytes.extend_from_slice(&piece);
                    if let Some(cb) = hooks.on_token.as_mut() {
                        let ev = TokenEvent {
                            sample: s,
                            token: tok,
                            piece: &piece,
                            logprob: lp,
                            n_generated: st.tokens.len(),
                        };
                        if !cb(&ev) {
                            cancelled = true;
                        }
                    }
                    if !st.thinking_closed && contains_new_stop(&st.bytes, piece.len(), &think_end)
                    {
                        st.thinking_closed = true;
                    }
                    if contains_new_stop(&st.bytes, piece.len(), &params.stop_strings)
                        || (params.stop_at_boxed
                            && piece.contains(&b'}')
                            && boxed_closed(&st.bytes))
                    {
                        finish = Some(FinishReason::Stop);
                    } else if let Some(left) = st.extra_left.as_mut() {
                        *left = left.saturating_sub(1);
                        if *left == 0 {
                            finish = Some(FinishReason::Forced);
                        }
                    } else if st.sampled >= params.max_tokens {
                        finish = Some(FinishReason::Length);
                    } else if params
                        .thinking_budget
                        .is_some_and(|b| st.sampled >= b && !st.thinking_closed)
                    {
                        match &params.budget_forcing {
                            Some(f) => {
                                // Decode the sampled token, then the forced text; sample next
                                // from the logits after the forced text.
                                batch.push(tok, st.pos, s as i32, false)?;
                                st.pos += 1;
                                for (j, &ft) in forcing.iter().enumerate() {
                                    let i =
                                        batch.push(ft, st.pos, s as i32, j + 1 == forcing.len())?;
                                    st.pos += 1;
                                    st.tokens.push(ft);
                                    st.logprobs.push(0.0);
                                    st.bytes.extend_from_slice(&model.token_bytes(ft, true));
                                    st.logits_idx = Some(i);
                                }
                                st.forced_tokens = forcing.len();
                                total_generated += forcing.len();
                                st.thinking_closed = true;
                                st.extra_left = Some(f.extra_tokens);
                                let forced_text_stops = params.stop_at_boxed
                                    && boxed_closed(&st.bytes)
                                    || contains_new_stop(
                                        &st.bytes,
                                        forced_len_bytes(&model, &forcing),
                                        &params.stop_strings,
                                    );
                                if f.extra_tokens == 0 || forced_text_stops {
                                    finish = Some(FinishReason::Forced);
                                } else {
                                    continue;
                                }
                            }
                            None => finish = Some(FinishReason::Budget),
                        }
                    }
                }
                match finish {
                    Some(reason) => {
                        let reason = if st.extra_left.is_some() && reason != FinishReason::Forced {
                            FinishReason::Forced
                        } else {
                            reason
                        };
                        st.finish = Some(reason);
                        st.logits_idx = None;
                        finish_order.push(s);
                        if let Some(a) = answer_key(&String::from_utf8_lossy(&st.bytes)) {
                            tally.add(&a);
                        }
                        ctx.remove_sequence(s as i32);
                    }
                    None => {
                        st.logits_idx = Some(batch.push(tok, st.pos, s as i32, true)?);
                        st.pos += 1;
                    }
                }
            }

            let running = states.iter().filter(|s| s.finish.is_none()).count();
            if running == 0 {
                break;
            }
            cancelled = cancelled || cancelled_now();
            let group_stop = if cancelled {
                Some(FinishReason::Cancelled)
            } else if consensus_reached(&params.consensus, &tally, running) {
                result.stopped_by_consensus = true;
                Some(FinishReason::Consensus)
            } else if params
                .group_token_budget
                .is_some_and(|b| total_generated >= b)
            {
                Some(FinishReason::Budget)
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                Some(FinishReason::Deadline)
            } else {
                None
            };
            if let Some(reason) = group_stop {
                cut_running(&mut states, &mut finish_order, reason);
                break;
            }
            match ctx.decode(batch) {
                Ok(()) => {}
                Err(e) if e.code() == ErrorCode::Cancelled => cancelled = true,
                Err(e) => {
                    ctx.set_abort_flag(None);
                    return Err(e);
                }
            }
        }
        if cancelled {
            cut_running(&mut states, &mut finish_order, FinishReason::Cancelled);
        }
        ctx.set_abort_flag(None);
        result.cancelled = cancelled;

        // Final vote, in the order samples finished, over the samples that ended on their own;
        // samples cut by a group decision vote only when no finished sample gave an answer.
        let mut final_tally = VoteTally::new();
        let mut cut_tally = VoteTally::new();
        let mut samples: Vec<Option<SampleResult>> = (0..n).map(|_| None).collect();
        for &s in &finish_order {
            let st = &states[s];
            let text = String::from_utf8_lossy(&st.bytes).into_owned();
            let answer = answer_key(&text);
            if let Some(a) = &answer {
                if st.cut_by_group {
                    cut_tally.add(a);
                } else {
                    final_tally.add(a);
                }
            }
            result.tokens_generated += st.tokens.len();
            result.tokens_fixed_budget += if st.cut_by_group {
                per_sample.max(st.tokens.len())
            } else {
                st.tokens.len()
            };
            samples[s] = Some(SampleResult {
                text,
                tokens: st.tokens.clone(),
                logprobs: st.logprobs.clone(),
                finish_reason: st.finish.unwrap_or(FinishReason::Cancelled),
                answer,
                forced_tokens: st.forced_tokens,
            });
        }
        if final_tally.leader().is_none() {
            final_tally = cut_tally;
        }
        result.samples = samples
            .into_iter()
            .map(|s| s.ok_or_else(|| Error::new(ErrorCode::Internal, "sample never finished")))
            .collect::<Result<_>>()?;
        result.votes = final_tally.ranked();
        result.voted_answer = result.votes.first().map(|v| v.answer.clone());
        result.wall_seconds = start.elapsed().as_secs_f64();
        Ok(result)
    }
}

/// Bytes of the rendered forced text.
fn forced_len_bytes(model: &Model, forcing: &[Token]) -> usize {
    forcing
        .iter()
        .map(|&t| model.token_bytes(t, true).len())
        .sum()
}

/// A sampled token and its log-probability.
type Draw = (Token, f32);

/// Samples the next token of every running sample from its logits row, spreading the samples
/// over the machine's cores (the rows are independent and each sampler owns its RNG, so the
/// result does not depend on the split). Entry `s` is `None` for finished samples.
fn draw_all(ctx: &Context, states: &mut [SampleState]) -> Result<Vec<Option<Draw>>> {
    let mut draws: Vec<Option<Draw>> = vec![None; states.len()];
    let mut jobs: Vec<(usize, &mut Sampler, &[f32])> = Vec::new();
    for (s, st) in states.iter_mut().enumerate() {
        if st.finish.is_some() {
            continue;
        }
        let idx = st
            .logits_idx
            .take()
            .ok_or_else(|| Error::new(ErrorCode::Internal, "sample without logits"))?;
        jobs.push((s, &mut st.sampler, ctx.logits(idx)?));
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if jobs.len() < 4 || threads < 2 {
        for (s, sampler, row) in jobs {
            draws[s] = Some(sampler.sample(row));
        }
        return Ok(draws);
    }
    let per = jobs.len().div_ceil(threads);
    let results: Vec<Option<Vec<(usize, Draw)>>> = std::thread::scope(|scope| {
        let mut chunks = jobs.chunks_mut(per);
        let first = chunks.next();
        let handles: Vec<_> = chunks
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter_mut()
                        .map(|(s, sampler, row)| (*s, sampler.sample(row)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = vec![first.map(|chunk| {
            chunk
                .iter_mut()
                .map(|(s, sampler, row)| (*s, sampler.sample(row)))
                .collect::<Vec<_>>()
        })];
        out.extend(handles.into_iter().map(|h| h.join().ok()));
        out
    });
    for part in results {
        let part =
            part.ok_or_else(|| Error::new(ErrorCode::Internal, "a sampling thread panicked"))?;
        for (s, d) in part {
            draws[s] = Some(d);
        }
    }
    Ok(draws)
}

fn batch_capacity(ctx: &Context) -> usize {
    ctx.n_batch() as usize
}

/// Ends every running sample with `reason` (a group decision), in sample order.
fn cut_running(states: &mut [SampleState], order: &mut Vec<usize>, reason: FinishReason) {
    for (s, st) in states.iter_mut().enumerate() {
        if st.finish.is_none() {
            st.finish = Some(reason);
            st.cut_by_group = true;
            order.push(s);
        }
    }
}
