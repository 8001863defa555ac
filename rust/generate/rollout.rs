//! The group rollout: a [`Generator`] runs one group at a time through the stages validate
//! ([`RolloutPlan`]) → prefill → advance samples → group stop → finalize ([`GroupRun`]).

use super::answer_key::{verifier_answer_key, AnswerKey};
use super::draw::draw_all;
use super::group::GroupRun;
use super::params::RolloutParams;
use super::plan::RolloutPlan;
use super::result::GroupResult;
use crate::engine::{Batch, Context, ContextParams, Model, Token};
use crate::error::{ErrorCode, Result};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::AtomicBool;
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
    /// Its log-probability (see [`super::SampleResult::logprobs`]).
    pub logprob: f32,
    /// Tokens this sample has generated so far, this one included.
    pub n_generated: usize,
    /// True for a token appended by budget forcing (not sampled; log-probability 0). The
    /// stream carries every token of a sample's text, so the streamed pieces joined equal
    /// [`super::SampleResult::text`].
    pub forced: bool,
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
        let start = Instant::now();
        let plan = RolloutPlan::new(&self.ctx, prompt, params)?;
        let answer_key = self
            .custom_key
            .clone()
            .unwrap_or_else(|| verifier_answer_key(params.answer.clone()));
        let batch = &mut self.batch;
        let mut ctx = AbortScope::install(&mut self.ctx, hooks.cancel.clone());
        ctx.clear_kv();
        let prefill = prefill(&mut ctx, batch, prompt, 0)?;
        let prompt_seconds = start.elapsed().as_secs_f64();
        for s in 1..params.n_samples {
            ctx.copy_sequence(0, s as i32)?;
        }
        let mut group = GroupRun::new(
            params,
            &plan,
            answer_key,
            hooks,
            0,
            prompt.len(),
            prefill.last_logits,
            start,
        )?;
        group.cancelled |= prefill.cancelled;
        while !group.cancelled {
            let draws = draw_all(&ctx, group.draw_jobs()?)?;
            batch.clear();
            group.advance(&mut ctx, batch, &draws)?;
            if group.running() == 0 || group.group_stop() {
                break;
            }
            match ctx.decode(batch) {
                Ok(()) => {}
                Err(e) if e.code() == ErrorCode::Cancelled => group.cancelled = true,
                Err(e) => return Err(e),
            }
        }
        if group.cancelled {
            group.cut_running(super::FinishReason::Cancelled);
        }
        drop(ctx);
        group.finalize(prompt.len(), prompt_seconds, start)
    }
}

/// Where the prompt's evaluation ended.
struct Prefill {
    /// Batch entry holding the logits after the prompt's last token.
    last_logits: usize,
    /// The abort flag stopped the evaluation.
    cancelled: bool,
}

/// The prefill stage: evaluates `prompt` on sequence `seq`, in chunks of at most `n_batch`
/// tokens, asking for the logits of the last token only.
fn prefill(ctx: &mut Context, batch: &mut Batch, prompt: &[Token], seq: i32) -> Result<Prefill> {
    let cap = ctx.n_batch() as usize;
    let mut last_logits = 0;
    for (c, chunk) in prompt.chunks(cap).enumerate() {
        batch.clear();
        let base = c * cap;
        for (j, &t) in chunk.iter().enumerate() {
            let is_last = base + j + 1 == prompt.len();
            let i = batch.push(t, (base + j) as i32, seq, is_last)?;
            if is_last {
                last_logits = i;
            }
        }
        match ctx.decode(batch) {
            Ok(()) => {}
            Err(e) if e.code() == ErrorCode::Cancelled => {
                return Ok(Prefill {
                    last_logits,
                    cancelled: true,
                })
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Prefill {
        last_logits,
        cancelled: false,
    })
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
