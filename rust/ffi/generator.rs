//! `fmr_generator`: group rollouts with length-aware early stopping.

use super::boundary::{exclusive, guard, guard_value, non_null};
use super::cancel::fmr_cancel_flag;
use super::error::fmr_error;
use super::growable::{init_in, read_in, Growable};
use super::model::fmr_model;
use super::result::fmr_result;
use super::strings::borrow_str;
use crate::engine::ContextParams;
use crate::generate::{Generator, RolloutHooks, RolloutParams, TokenEvent};
use std::ffi::{c_char, c_void};
use std::sync::Mutex;

/// A generator: a llama.cpp context on one model. One call at a time per handle (use one
/// generator per thread; a concurrent call fails with `FMR_ERR_BUSY`). Keeps its model alive.
pub struct fmr_generator {
    generator: Mutex<Generator>,
}

/// Generator (context) parameters. Initialise with `fmr_generator_params_init(&p, sizeof p)`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fmr_generator_params {
    /// Size of this struct in the caller's header (`fmr_generator_params_init` sets it).
    pub struct_size: u32,
    /// KV cache size in tokens for all samples together (each of the n_seq_max streams gets
    /// n_ctx / n_seq_max unless kv_unified); 0 = the model's training length.
    pub n_ctx: u32,
    /// Largest batch of tokens per decode call.
    pub n_batch: u32,
    /// Most samples per group.
    pub n_seq_max: u32,
    /// Decoding threads; 0 = all cores.
    pub n_threads: i32,
    /// Flash attention: -1 = auto (default), 0 = off, 1 = on.
    pub flash_attn: i32,
    /// One KV buffer for all samples (true) or a stream of n_ctx / n_seq_max cells per sample
    /// (false, default: faster).
    pub kv_unified: bool,
    /// Keep the KV cache on the GPU that holds the model (default true; no effect on the CPU).
    pub offload_kqv: bool,
}

// SAFETY: repr(C), struct_size first, plain data.
unsafe impl Growable for fmr_generator_params {
    const NAME: &'static str = "fmr_generator_params";
    const MIN_SIZE: usize = std::mem::size_of::<fmr_generator_params>();
    const INIT: &'static str = "initialise it with fmr_generator_params_init(&p, sizeof p)";
}

/// Fills `*params` with the defaults (n_ctx 4096, n_batch 2048, 16 samples, all cores, a KV
/// stream per sample) and sets `struct_size` to `size`: pass `sizeof` the struct in your
/// header. Does nothing when `params` is NULL or `size` is smaller than the first version.
///
/// # Safety
/// `params` is NULL or writable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn fmr_generator_params_init(params: *mut fmr_generator_params, size: usize) {
    // SAFETY: NULL or writable for size bytes per the contract.
    guard_value((), || unsafe {
        init_in(params, size, default_generator_params())
    })
}

fn default_generator_params() -> fmr_generator_params {
    let d = ContextParams::default();
    fmr_generator_params {
        struct_size: std::mem::size_of::<fmr_generator_params>() as u32,
        n_ctx: d.n_ctx,
        n_batch: d.n_batch,
        n_seq_max: d.n_seq_max,
        n_threads: d.n_threads,
        flash_attn: d.flash_attn,
        kv_unified: d.kv_unified,
        offload_kqv: d.offload_kqv,
    }
}

/// One generated token, passed to `fmr_token_callback`. Valid only during the call.
#[repr(C)]
#[derive(Debug)]
pub struct fmr_token_event {
    /// Size of this struct in the library that sent it: read a field only when `struct_size`
    /// covers it (`offsetof(fmr_token_event, field) + sizeof field <= struct_size`).
    pub struct_size: u32,
    /// Sample index within the group.
    pub sample: u32,
    /// Token id.
    pub token: i32,
    /// Log-probability of the token (nats).
    pub logprob: f32,
    /// Tokens this sample has generated so far, this one included.
    pub n_generated: u32,
    /// The token's bytes (not NUL-terminated; may be part of a UTF-8 sequence).
    pub piece: *const c_char,
    /// Length of `piece` in bytes.
    pub piece_len: usize,
    /// True for a token appended by budget forcing (not sampled; `logprob` is 0). Every token
    /// of a sample's text is streamed, so the pieces joined equal the result's text. Read it
    /// only when `struct_size` covers it (libraries older than this field do not send it).
    pub forced: bool,
    /// Padding (the fields below were added after 0.2.0: read them only when `struct_size`
    /// covers them).
    pub _reserved0: [u8; 7],
    /// The token's confidence: −mean of the step's top-k log-probabilities (0 for forced
    /// tokens or with confidence off).
    pub confidence: f32,
    /// Entries in `top_tokens` and `top_logprobs` (0 for forced tokens or with confidence off).
    pub top_k: u32,
    /// The step's most likely tokens, most likely first; valid only during the call.
    pub top_tokens: *const i32,
    /// Their log-probabilities (nats).
    pub top_logprobs: *const f32,
}

/// Streaming callback: return false to cancel the rollout (the solve then succeeds with
/// `cancelled` set). Runs on the thread that called `fmr_generator_solve`; it must not call
/// back into the same generator.
pub type fmr_token_callback =
    Option<unsafe extern "C" fn(event: *const fmr_token_event, user_data: *mut c_void) -> bool>;

/// Per-call hooks of a rollout. All fields may be zero/NULL. Initialise with
/// `fmr_rollout_hooks_init(&h, sizeof h)`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fmr_rollout_hooks {
    /// Size of this struct in the caller's header (`fmr_rollout_hooks_init` sets it).
    pub struct_size: u32,
    /// Called for every generated token; NULL for none.
    pub on_token: fmr_token_callback,
    /// Passed to `on_token` unchanged.
    pub user_data: *mut c_void,
    /// A flag another thread may set to cancel; NULL for none. Must outlive the call.
    pub cancel: *const fmr_cancel_flag,
    /// Milliseconds from the start of the call after which the running samples stop (finish
    /// reason `FMR_FINISH_DEADLINE`) and the group votes on what it has; 0 = none. With a
    /// `deadline_ms` in the parameters too, the earlier applies. (Added in 0.2; a header
    /// without it passes a smaller `struct_size` and gets no deadline.)
    pub deadline_ms: u64,
}

// SAFETY: repr(C), struct_size first, plain data (pointers are only copied).
unsafe impl Growable for fmr_rollout_hooks {
    const NAME: &'static str = "fmr_rollout_hooks";
    /// Version 1 (fmr 0.1) ended before `deadline_ms`.
    const MIN_SIZE: usize = std::mem::offset_of!(fmr_rollout_hooks, deadline_ms);
    const INIT: &'static str = "initialise it with fmr_rollout_hooks_init(&h, sizeof h)";
}

fn default_hooks() -> fmr_rollout_hooks {
    fmr_rollout_hooks {
        struct_size: std::mem::size_of::<fmr_rollout_hooks>() as u32,
        on_token: None,
        user_data: std::ptr::null_mut(),
        cancel: std::ptr::null(),
        deadline_ms: 0,
    }
}

/// Fills `*hooks` with empty hooks (no callback, no cancel flag, no deadline) and sets
/// `struct_size` to `size`: pass `sizeof` the struct in your header. Does nothing when `hooks`
/// is NULL or `size` is smaller than the first version.
///
/// # Safety
/// `hooks` is NULL or writable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn fmr_rollout_hooks_init(hooks: *mut fmr_rollout_hooks, size: usize) {
    // SAFETY: NULL or writable for size bytes per the contract.
    guard_value((), || unsafe { init_in(hooks, size, default_hooks()) })
}

/// Creates a generator on `model`. `params` may be NULL for defaults. On success writes a new
/// handle to `*out` (release with `fmr_generator_free`). Thread-safe: several threads may
/// create generators on one model at once.
///
/// # Safety
/// `model` is a live handle; `params` is NULL or valid for its `struct_size`; `out` is
/// writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_generator_new(
    model: *const fmr_model,
    params: *const fmr_generator_params,
    out: *mut *mut fmr_generator,
) -> *mut fmr_error {
    guard(|| {
        non_null(model, "model")?;
        non_null(out, "out")?;
        let mut cp = ContextParams::default();
        if !params.is_null() {
            // SAFETY: valid for its struct_size per the contract.
            let p = unsafe { read_in(params, default_generator_params()) }?;
            cp = ContextParams {
                n_ctx: p.n_ctx,
                n_batch: p.n_batch,
                n_seq_max: p.n_seq_max,
                n_threads: p.n_threads,
                flash_attn: p.flash_attn,
                kv_unified: p.kv_unified,
                offload_kqv: p.offload_kqv,
                ..ContextParams::default()
            };
        }
        // SAFETY: live handle per the contract.
        let model = unsafe { &*model }.model.clone();
        let generator = Generator::new(model, &cp)?;
        // SAFETY: writable per the contract.
        unsafe {
            *out = Box::into_raw(Box::new(fmr_generator {
                generator: Mutex::new(generator),
            }))
        };
        Ok(())
    })
}

/// Releases a generator. NULL is a no-op.
///
/// # Safety
/// `generator` is NULL or a live handle not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn fmr_generator_free(generator: *mut fmr_generator) {
    guard_value((), || {
        if !generator.is_null() {
            // SAFETY: came from Box::into_raw in fmr_generator_new; freed once.
            drop(unsafe { Box::from_raw(generator) });
        }
    })
}

/// Solves one problem: renders it with the prompt settings, samples a group and votes.
///
/// `params_json` (UTF-8, may be empty for defaults) holds rollout parameters; unknown keys are
/// errors. Keys: `prompt` {`system`, `format`: {`kind`: `model`|`builtin`|`pattern`|`raw`, …}},
/// `n_samples`, `sampling` {`temperature`, `top_k`, `top_p`, `min_p`, `seed`}, `max_tokens`,
/// `stop_strings`, `stop_at_boxed`, `thinking_budget`, `budget_forcing` {`text`,
/// `extra_tokens`}, `group_token_budget`, `consensus` {`rule`:
/// `off`|`k_of_n`|`lossless`|`weighted`, `k`, `tau`, `min_votes`}, `deadline_ms`, `answer`
/// (extraction options), `confidence` {`top_k`, `window`, `tail`, `keep_top_logprobs`}, `vote`
/// {`weight`: `none`|`mean`|`lowest_window`|`tail`, `top_percent`}, `confidence_stop`
/// {`threshold`: {`source`: `warmup` (`samples`, `percentile`) | `file` (`path`,
/// `percentile`) | `fixed` (`value`)}}, `probe` {`every`, `text`, `max_tokens`, `agree`},
/// `esc` {`window`}; the README's table describes each. `hooks` may be NULL. On success writes a new
/// result to `*out` (release with `fmr_result_free`); a cancelled run still succeeds with
/// `cancelled` set in its stats. One call at a time per generator (`FMR_ERR_BUSY` otherwise).
///
/// # Safety
/// `generator` is a live handle; string arguments are valid for their lengths; `hooks` is NULL
/// or valid for its `struct_size`; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_generator_solve(
    generator: *mut fmr_generator,
    problem: *const c_char,
    problem_len: usize,
    params_json: *const c_char,
    params_json_len: usize,
    hooks: *const fmr_rollout_hooks,
    out: *mut *mut fmr_result,
) -> *mut fmr_error {
    guard(|| {
        non_null(generator, "generator")?;
        non_null(out, "out")?;
        // SAFETY: valid for their lengths per the contract.
        let problem = unsafe { borrow_str(problem, problem_len, "problem") }?;
        // SAFETY: as above.
        let json = unsafe { borrow_str(params_json, params_json_len, "params_json") }?;
        let mut params = RolloutParams::from_json(json)?;
        let hooks_in = if hooks.is_null() {
            None
        } else {
            // SAFETY: valid for its struct_size per the contract.
            Some(unsafe { read_in(hooks, default_hooks()) }?)
        };
        if let Some(ms) = hooks_in.map(|h| h.deadline_ms).filter(|&ms| ms > 0) {
            params.deadline_ms = Some(params.deadline_ms.map_or(ms, |p| p.min(ms)));
        }
        // SAFETY: a live handle per the contract; its state is behind a mutex.
        let g = unsafe { &*generator };
        let mut generator = exclusive(&g.generator, "generator")?;
        let mut forward = |ev: &TokenEvent<'_>| -> bool {
            let Some(h) = &hooks_in else { return true };
            let Some(cb) = h.on_token else { return true };
            let event = fmr_token_event {
                struct_size: std::mem::size_of::<fmr_token_event>() as u32,
                sample: ev.sample as u32,
                token: ev.token,
                logprob: ev.logprob,
                n_generated: ev.n_generated as u32,
                piece: ev.piece.as_ptr().cast(),
                piece_len: ev.piece.len(),
                forced: ev.forced,
                _reserved0: [0; 7],
                confidence: ev.confidence,
                top_k: ev.top_tokens.len() as u32,
                top_tokens: ev.top_tokens.as_ptr(),
                top_logprobs: ev.top_logprobs.as_ptr(),
            };
            // SAFETY: the host's callback with its own user_data; event lives for the call.
            unsafe { cb(&event, h.user_data) }
        };
        let has_cb = hooks_in.as_ref().is_some_and(|h| h.on_token.is_some());
        let cancel = hooks_in.as_ref().and_then(|h| {
            // SAFETY: NULL or a live flag that outlives the call, per the contract.
            unsafe { h.cancel.as_ref() }.map(|f| f.flag.clone())
        });
        let hooks = RolloutHooks {
            on_token: if has_cb { Some(&mut forward) } else { None },
            cancel,
        };
        let result = generator.solve(problem, &params, hooks)?;
        // SAFETY: writable per the contract.
        unsafe { *out = fmr_result::into_raw(result) };
        Ok(())
    })
}
