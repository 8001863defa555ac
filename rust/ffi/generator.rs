//! `fmr_generator`: group rollouts with length-aware early stopping.

use super::boundary::{check_struct_size, guard, guard_value, non_null};
use super::cancel::fmr_cancel_flag;
use super::error::fmr_error;
use super::model::fmr_model;
use super::result::fmr_result;
use super::strings::borrow_str;
use crate::engine::ContextParams;
use crate::generate::{Generator, RolloutHooks, RolloutParams, TokenEvent};
use std::ffi::{c_char, c_void};

/// A generator: a llama.cpp context on one model. Not thread-safe: one call at a time per
/// handle (use one generator per thread). Keeps its model alive.
pub struct fmr_generator {
    generator: Generator,
}

/// Generator (context) parameters, version 1. Initialise with `fmr_generator_default_params()`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fmr_generator_params {
    /// Size of this struct in bytes, set by `fmr_generator_default_params()`.
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
}

/// Default generator parameters (n_ctx 4096, n_batch 2048, 16 samples, all cores, a KV
/// stream per sample).
#[no_mangle]
pub extern "C" fn fmr_generator_default_params() -> fmr_generator_params {
    let d = ContextParams::default();
    fmr_generator_params {
        struct_size: std::mem::size_of::<fmr_generator_params>() as u32,
        n_ctx: d.n_ctx,
        n_batch: d.n_batch,
        n_seq_max: d.n_seq_max,
        n_threads: d.n_threads,
        flash_attn: d.flash_attn,
        kv_unified: d.kv_unified,
    }
}

/// One generated token, passed to `fmr_token_callback`. Valid only during the call.
#[repr(C)]
#[derive(Debug)]
pub struct fmr_token_event {
    /// Size of this struct in bytes (grows in later versions).
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
}

/// Streaming callback: return false to cancel the rollout. Runs on the calling thread.
pub type fmr_token_callback =
    Option<unsafe extern "C" fn(event: *const fmr_token_event, user_data: *mut c_void) -> bool>;

/// Hooks for a rollout, version 1. All fields may be zero/NULL. Initialise with
/// `fmr_rollout_hooks_default()`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fmr_rollout_hooks {
    /// Size of this struct in bytes.
    pub struct_size: u32,
    /// Called for every generated token; NULL for none.
    pub on_token: fmr_token_callback,
    /// Passed to `on_token` unchanged.
    pub user_data: *mut c_void,
    /// A flag another thread may set to cancel; NULL for none. Must outlive the call.
    pub cancel: *const fmr_cancel_flag,
}

/// Empty hooks with `struct_size` set.
#[no_mangle]
pub extern "C" fn fmr_rollout_hooks_default() -> fmr_rollout_hooks {
    fmr_rollout_hooks {
        struct_size: std::mem::size_of::<fmr_rollout_hooks>() as u32,
        on_token: None,
        user_data: std::ptr::null_mut(),
        cancel: std::ptr::null(),
    }
}

/// Creates a generator on `model`. `params` may be NULL for defaults. On success writes a new
/// handle to `*out` (release with `fmr_generator_free`).
///
/// # Safety
/// `model` is a live handle; `params` is NULL or valid; `out` is writable.
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
        // SAFETY: NULL or valid per the contract.
        if let Some(p) = unsafe { params.as_ref() } {
            check_struct_size(
                p.struct_size,
                std::mem::size_of::<fmr_generator_params>(),
                "fmr_generator_params",
                "fmr_generator_default_params",
            )?;
            cp = ContextParams {
                n_ctx: p.n_ctx,
                n_batch: p.n_batch,
                n_seq_max: p.n_seq_max,
                n_threads: p.n_threads,
                flash_attn: p.flash_attn,
                kv_unified: p.kv_unified,
                ..ContextParams::default()
            };
        }
        // SAFETY: live handle per the contract.
        let model = unsafe { &*model }.model.clone();
        let generator = Generator::new(model, &cp)?;
        // SAFETY: writable per the contract.
        unsafe { *out = Box::into_raw(Box::new(fmr_generator { generator })) };
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
/// `extra_tokens`}, `group_token_budget`, `consensus` {`rule`: `off`|`k_of_n`|`lossless`, `k`},
/// `deadline_ms`. `hooks` may be NULL. On success writes a new result to `*out` (release with
/// `fmr_result_free`); a cancelled run still succeeds with `cancelled` set in its stats.
///
/// # Safety
/// `generator` is a live handle used by no other thread; string arguments are valid for their
/// lengths; `hooks` is NULL or valid; `out` is writable.
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
        let params = RolloutParams::from_json(json)?;
        // SAFETY: NULL or valid per the contract.
        let hooks_in = unsafe { hooks.as_ref() }.copied();
        if let Some(h) = &hooks_in {
            check_struct_size(
                h.struct_size,
                std::mem::size_of::<fmr_rollout_hooks>(),
                "fmr_rollout_hooks",
                "fmr_rollout_hooks_default",
            )?;
        }
        // SAFETY: live and exclusively used per the contract.
        let g = unsafe { &mut *generator };
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
        let result = g.generator.solve(problem, &params, hooks)?;
        // SAFETY: writable per the contract.
        unsafe { *out = fmr_result::into_raw(result) };
        Ok(())
    })
}
