//! Many groups in one decode loop.
//!
//! Each step draws the next token of every running sample of every group in flight, takes each
//! group through its per-sample and group stop policies, starts waiting groups whose samples fit
//! in the free KV sequences and the batch (their prompt's last tokens ride in the same batch),
//! and decodes everything in one `llama_decode` call. Groups start in request order; a group
//! that finishes frees its sequences for the next one. Each group keeps its own samplers, stop
//! policies, votes, deadline and hooks, so its result is the one it would have alone (up to the
//! floating-point effects of batching on the logits).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::answer_key::AnswerKey;
use super::draw::draw_all;
use super::group::GroupRun;
use super::params::RolloutParams;
use super::plan::RolloutPlan;
use super::result::{FinishReason, GroupResult};
use super::rollout::RolloutHooks;
use crate::engine::{Batch, Context, Token};
use crate::error::{Error, ErrorCode, Result};

/// One problem of a multi-group run: prompt tokens, parameters and the group's own hooks.
pub struct GroupRequest<'h> {
    /// Prompt tokens (see [`super::PromptParams::tokenize`]).
    pub prompt: Vec<Token>,
    /// The group's parameters (samples, sampling, stop policies, deadline, …).
    pub params: RolloutParams,
    /// The group's streaming callback and cancel flag (a set flag ends this group only).
    pub hooks: RolloutHooks<'h>,
}

/// A group in flight.
struct Active<'p, 'h> {
    /// Index of the request.
    index: usize,
    run: GroupRun<'p, 'h>,
    prompt_len: usize,
    start: Instant,
    /// Batch entry of the prompt's last token while the prompt is being evaluated.
    prompt_last: Option<usize>,
    prompt_seconds: f64,
    /// Batch entries this group may add per step, and KV cells it may use (unified cache).
    batch_slots: usize,
    cells: usize,
    /// Set when the group failed (its sequences are freed and its error reported).
    error: Option<Error>,
}

/// The loop's limits and shared state.
pub(super) struct Schedule<'a> {
    pub ctx: &'a mut Context,
    pub batch: &'a mut Batch,
    /// Most sequences (samples) in flight at once.
    pub max_sequences: usize,
    pub answer_key: &'a dyn Fn(&RolloutParams) -> AnswerKey,
    /// Cancels the whole loop (also installed as the decode abort flag by the caller).
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Schedule<'_> {
    /// Runs every request; `on_done(i, result)` receives request `i`'s outcome as it finishes
    /// (invalid requests fail at once; the others in finish order). A cancelled loop ends
    /// every running group as cancelled, and groups that never started come back as cancelled
    /// results with empty samples.
    ///
    /// Errors: a decode failure other than cancellation (every group in flight is lost).
    pub fn run(
        self,
        requests: Vec<GroupRequest<'_>>,
        on_done: &mut dyn FnMut(usize, Result<GroupResult>),
    ) -> Result<()> {
        let Schedule {
            ctx,
            batch,
            max_sequences,
            answer_key,
            cancel,
        } = self;
        let n_seq_max = ctx.n_seq_max() as usize;
        let max_sequences = if max_sequences == 0 {
            n_seq_max
        } else {
            max_sequences.min(n_seq_max)
        };
        let n_batch = ctx.n_batch() as usize;
        let unified = ctx.n_ctx_seq() == ctx.n_ctx();
        let start = Instant::now();
        let mut specs = Vec::with_capacity(requests.len());
        let mut hooks = Vec::with_capacity(requests.len());
        for r in requests {
            specs.push((r.prompt, r.params));
            hooks.push(Some(r.hooks));
        }
        // The validate stage for every request, before anything touches the KV cache.
        let plans: Vec<Result<RolloutPlan>> = specs
            .iter()
            .map(|(prompt, params)| {
                let plan = RolloutPlan::new(ctx, prompt, params)?;
                if params.sequences_needed() > max_sequences {
                    return Err(Error::invalid(format!(
                        "the group's {} sequences exceed the {max_sequences} sequences in flight",
                        params.sequences_needed()
                    )));
                }
                Ok(plan)
            })
            .collect();
        ctx.clear_kv();
        let mut free_seqs: Vec<i32> = (0..max_sequences as i32).rev().collect();
        let mut active: Vec<Active<'_, '_>> = Vec::new();
        let (mut used_slots, mut used_cells) = (0usize, 0usize);
        let mut next = 0usize;
        let cancelled = || cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed));
        let mut loop_cancelled = false;

        loop {
            // Draw for every sample with logits from the last decode, then advance each group.
            batch.clear();
            let mut per_group: Vec<Vec<(usize, (Token, f32))>> = vec![Vec::new(); active.len()];
            let mut failed: Vec<(usize, Error)> = Vec::new();
            // A cancelled group draws nothing more: it leaves at the group stop below.
            loop_cancelled = loop_cancelled || cancelled();
            let mut jobs = Vec::new();
            for (g, a) in active.iter_mut().enumerate() {
                if a.prompt_last.is_some() {
                    continue;
                }
                a.run.cancelled |= loop_cancelled || a.run.cancel_requested();
                if !a.run.cancelled {
                    jobs.extend(a.run.draw_jobs(g)?);
                }
            }
            for (g, s, d) in draw_all(ctx, jobs)? {
                match d {
                    Ok(d) => per_group[g].push((s, d)),
                    Err(e) => failed.push((g, e)),
                }
            }
            for (g, e) in failed {
                active[g].error.get_or_insert(e);
            }
            for (a, draws) in active.iter_mut().zip(per_group) {
                if a.error.is_none() && a.prompt_last.is_none() && !a.run.cancelled {
                    if let Err(e) = a.run.advance(ctx, batch, draws.into_iter()) {
                        a.error = Some(e);
                    }
                }
            }

            // Group stop: finished, stopped or failed groups leave and free their sequences.
            loop_cancelled = loop_cancelled || cancelled();
            let mut leaving = Vec::new();
            for (g, a) in active.iter_mut().enumerate() {
                if a.prompt_last.is_some() {
                    continue;
                }
                if loop_cancelled {
                    a.run.cancelled = true;
                }
                let done = a.error.is_some()
                    || a.run.cancelled
                    || a.run.running() == 0
                    || a.run.group_stop();
                if done {
                    leaving.push(g);
                }
            }
            if !leaving.is_empty() {
                let dead: Vec<i32> = leaving
                    .iter()
                    .flat_map(|&g| active[g].run.seqs().to_vec())
                    .collect();
                let map = batch.retain_seqs(|s| !dead.contains(&s));
                for a in active.iter_mut() {
                    a.run.remap_logits(&map);
                }
                for &g in leaving.iter().rev() {
                    let mut a = active.remove(g);
                    for &s in a.run.seqs() {
                        ctx.remove_sequence(s)?;
                        free_seqs.push(s);
                    }
                    used_slots -= a.batch_slots;
                    used_cells -= a.cells;
                    let result = match a.error.take() {
                        Some(e) => Err(e),
                        None => {
                            if a.run.cancelled {
                                a.run.cut_running(FinishReason::Cancelled);
                            }
                            a.run.finalize(a.prompt_len, a.prompt_seconds, a.start)
                        }
                    };
                    on_done(a.index, result);
                }
                // Lowest ids first, so that a lone group always runs on sequences 0..n.
                free_seqs.sort_unstable_by(|a, b| b.cmp(a));
            }

            // Admission: waiting groups start, in order, while their samples fit.
            while next < specs.len() && !loop_cancelled {
                let (prompt, params) = &specs[next];
                let plan = match &plans[next] {
                    Ok(p) => p,
                    Err(e) => {
                        on_done(next, Err(e.clone()));
                        next += 1;
                        continue;
                    }
                };
                let n = params.sequences_needed();
                let slots = plan.batch_slots(params);
                let cells = if unified {
                    prompt.len() + params.n_samples * (plan.per_sample + plan.probe_cells(params))
                } else {
                    0
                };
                let room = n_batch - batch.len();
                if free_seqs.len() < n
                    || used_slots + slots > n_batch
                    || room == 0
                    || (unified && used_cells + cells > ctx.n_ctx() as usize)
                {
                    break;
                }
                let seqs: Vec<i32> = (0..n).filter_map(|_| free_seqs.pop()).collect();
                let group_start = if active.is_empty() && next == 0 {
                    start
                } else {
                    Instant::now()
                };
                // Leading prompt chunks that do not fit beside this step's tokens are
                // evaluated first, on their own; the rest joins the step's batch.
                let tail = prompt.len().min(room);
                let head = prompt.len() - tail;
                if head > 0 {
                    match prefill_head(ctx, &prompt[..head], seqs[0], n_batch) {
                        Ok(()) => {}
                        Err(e) if e.code() == ErrorCode::Cancelled => {
                            ctx.remove_sequence(seqs[0])?;
                            free_seqs.extend(seqs);
                            loop_cancelled = true;
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
                let mut last = 0;
                for (j, &t) in prompt[head..].iter().enumerate() {
                    let pos = head + j;
                    last = batch.push(t, pos as i32, seqs[0], pos + 1 == prompt.len())?;
                }
                let group_hooks = hooks[next].take().unwrap_or_default();
                let run = GroupRun::new(
                    params,
                    plan,
                    answer_key(params),
                    group_hooks,
                    seqs,
                    prompt.len(),
                    group_start,
                )?;
                active.push(Active {
                    index: next,
                    run,
                    prompt_len: prompt.len(),
                    start: group_start,
                    prompt_last: Some(last),
                    prompt_seconds: 0.0,
                    batch_slots: slots,
                    cells,
                    error: None,
                });
                used_slots += slots;
                used_cells += cells;
                next += 1;
            }

            if active.is_empty() {
                // Nothing in flight: either every request is done, or the loop was cancelled
                // and the rest never start.
                report_unstarted(&specs[next..], &plans[next..], next, on_done);
                return Ok(());
            }
            if batch.is_empty() {
                continue;
            }
            match ctx.decode(batch) {
                Ok(()) => {}
                Err(e) if e.code() == ErrorCode::Cancelled => {
                    // The abort flag stopped the decode: every group in flight ends as
                    // cancelled with what it has; waiting groups never start.
                    for mut a in active.drain(..) {
                        a.run.cancelled = true;
                        a.run.cut_running(FinishReason::Cancelled);
                        on_done(
                            a.index,
                            a.run.finalize(a.prompt_len, a.prompt_seconds, a.start),
                        );
                    }
                    report_unstarted(&specs[next..], &plans[next..], next, on_done);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            // Groups whose prompt was just evaluated: share it with every sample.
            for a in active.iter_mut() {
                if let Some(idx) = a.prompt_last.take() {
                    let seqs = a.run.sample_seqs().to_vec();
                    for &s in &seqs[1..] {
                        ctx.copy_sequence(seqs[0], s)?;
                    }
                    a.run.prompt_done(ctx, idx)?;
                    a.prompt_seconds = a.start.elapsed().as_secs_f64();
                }
            }
        }
    }
}

/// Reports the requests that never started after a cancel (the first has index `first`): a
/// cancelled result with empty samples each, or the request's own validation error.
fn report_unstarted(
    specs: &[(Vec<Token>, RolloutParams)],
    plans: &[Result<RolloutPlan>],
    first: usize,
    on_done: &mut dyn FnMut(usize, Result<GroupResult>),
) {
    for (k, ((prompt, params), plan)) in specs.iter().zip(plans).enumerate() {
        let r = match plan {
            Ok(_) => Ok(GroupResult::cancelled_before_start(
                prompt.len(),
                params.n_samples,
            )),
            Err(e) => Err(e.clone()),
        };
        on_done(first + k, r);
    }
}

/// Evaluates the leading `tokens` of a prompt on `seq` in chunks of `n_batch`, without logits.
fn prefill_head(ctx: &mut Context, tokens: &[Token], seq: i32, n_batch: usize) -> Result<()> {
    let mut b = Batch::new(n_batch.min(tokens.len()));
    for (c, chunk) in tokens.chunks(n_batch).enumerate() {
        b.clear();
        for (j, &t) in chunk.iter().enumerate() {
            b.push(t, (c * n_batch + j) as i32, seq, false)?;
        }
        ctx.decode(&b)?;
    }
    Ok(())
}
