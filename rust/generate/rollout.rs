//! Group rollouts: a [`Generator`] runs one group, or many groups in one decode loop, through
//! the stages validate (`RolloutPlan`) → prefill → draw → advance samples → group stop →
//! finalize (`GroupRun`), scheduled by `Schedule`.

use super::answer_key::{verifier_answer_key, AnswerKey};
use super::params::RolloutParams;
use super::result::GroupResult;
use super::schedule::{GroupRequest, Schedule};
use crate::engine::{Batch, Context, ContextParams, Model, Token};
use crate::error::{Error, ErrorCode, Result};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// One generated token, as seen by a streaming callback.
#[derive(Debug)]
pub struct TokenEvent<'a> {
    /// Index of the sample within its group.
    pub sample: usize,
    /// The token id.
    pub token: Token,
    /// The token's bytes (may be part of a UTF-8 sequence).
    pub piece: &'a [u8],
    /// Its log-probability (see [`super::SampleResult::logprobs`]).
    pub logprob: f32,
    /// Tokens this sample has generated so far, this one included.
    pub n_generated: usize,
    /// True for a token appended by budget forcing (not sampled; log-probability 0). The
    /// stream carries every token of a sample's text, so the streamed pieces joined equal
    /// [`super::SampleResult::text`].
    pub forced: bool,
    /// The token's confidence: −mean of the step's top-k log-probabilities (0 for forced
    /// tokens or with confidence off).
    pub confidence: f32,
    /// The step's `confidence.top_k` most likely tokens, most likely first (empty for forced
    /// tokens or with confidence off).
    pub top_tokens: &'a [Token],
    /// Their log-probabilities (same length as `top_tokens`).
    pub top_logprobs: &'a [f32],
}

/// Caller hooks for a rollout. Both are optional.
#[derive(Default)]
pub struct RolloutHooks<'a> {
    /// Called for every token of a sample's text, sampled or forced (not for end-of-generation
    /// tokens); return `false` to cancel the group. Runs on the thread that runs the rollout.
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
    /// decode failures, NaN or infinite logits ([`ErrorCode::NonFinite`], naming the sample
    /// and position). Cancellation is not an error: the partial result comes back with
    /// `cancelled` set and the running samples marked [`super::FinishReason::Cancelled`].
    pub fn rollout(
        &mut self,
        prompt: &[Token],
        params: &RolloutParams,
        hooks: RolloutHooks<'_>,
    ) -> Result<GroupResult> {
        let cancel = hooks.cancel.clone();
        let request = GroupRequest {
            prompt: prompt.to_vec(),
            params: params.clone(),
            hooks,
        };
        let mut out = None;
        self.run_schedule(vec![request], 0, cancel, &mut |_, r| out = Some(r))?;
        out.unwrap_or_else(|| Err(Error::new(ErrorCode::Internal, "the group never finished")))
    }

    /// Runs many groups through one decode loop (the whole batch of a GRPO step, or an
    /// evaluation's problems): at most `max_sequences` samples in flight at once (0 = the
    /// context's `n_seq_max`), groups started in order as sequences free up. `on_done(i, r)`
    /// receives request `i`'s result as it finishes; a request whose parameters are invalid,
    /// or whose sampling fails (NaN logits), fails alone. `cancel` stops everything: running
    /// groups end as cancelled results, and groups that never started come back cancelled
    /// with empty samples. Clears the KV cache first.
    ///
    /// Errors: a decode failure (the groups in flight are lost).
    pub fn rollout_many(
        &mut self,
        requests: Vec<GroupRequest<'_>>,
        max_sequences: usize,
        cancel: Option<Arc<AtomicBool>>,
        on_done: &mut dyn FnMut(usize, Result<GroupResult>),
    ) -> Result<()> {
        self.run_schedule(requests, max_sequences, cancel, on_done)
    }

    /// [`Generator::rollout_many`] on problem texts rendered with `params.prompt`; the results
    /// come back in problem order.
    pub fn solve_many(
        &mut self,
        problems: &[&str],
        params: &RolloutParams,
        max_sequences: usize,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Result<Vec<Result<GroupResult>>> {
        let mut requests = Vec::with_capacity(problems.len());
        for p in problems {
            requests.push(GroupRequest {
                prompt: params.prompt.tokenize(self.ctx.model(), p)?,
                params: params.clone(),
                hooks: RolloutHooks::default(),
            });
        }
        let mut out: Vec<Option<Result<GroupResult>>> = (0..problems.len()).map(|_| None).collect();
        self.run_schedule(requests, max_sequences, cancel, &mut |i, r| {
            out[i] = Some(r)
        })?;
        Ok(out
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(Error::new(ErrorCode::Internal, "a group never finished")))
            })
            .collect())
    }

    fn run_schedule(
        &mut self,
        requests: Vec<GroupRequest<'_>>,
        max_sequences: usize,
        cancel: Option<Arc<AtomicBool>>,
        on_done: &mut dyn FnMut(usize, Result<GroupResult>),
    ) -> Result<()> {
        let custom = self.custom_key.clone();
        let answer_key = move |p: &RolloutParams| {
            custom
                .clone()
                .unwrap_or_else(|| verifier_answer_key(p.answer.clone()))
        };
        let mut ctx = AbortScope::install(&mut self.ctx, cancel.clone());
        Schedule {
            ctx: &mut ctx,
            batch: &mut self.batch,
            max_sequences,
            answer_key: &answer_key,
            cancel,
        }
        .run(requests, on_done)
    }
}

/// A context with the caller's cancel flag installed as its abort flag for the length of one
/// rollout; dropping it (on success, error or early return) removes the flag, so a flag never
/// outlives the rollout it was given for.
struct AbortScope<'a> {
    ctx: &'a mut Context,
}

impl<'a> AbortScope<'a> {
    fn install(ctx: &'a mut Context, flag: Option<Arc<AtomicBool>>) -> Self {
        ctx.set_abort_flag(flag);
        AbortScope { ctx }
    }
}

impl Deref for AbortScope<'_> {
    type Target = Context;
    fn deref(&self) -> &Context {
        self.ctx
    }
}

impl DerefMut for AbortScope<'_> {
    fn deref_mut(&mut self) -> &mut Context {
        self.ctx
    }
}

impl Drop for AbortScope<'_> {
    fn drop(&mut self) {
        self.ctx.set_abort_flag(None);
    }
}
