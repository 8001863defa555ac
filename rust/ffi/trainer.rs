//! `fmr_trainer`: the SFT and GRPO loops of the recipe behind one handle — step-wise or whole
//! runs, a host reward callback, adapters in and out.

use std::ffi::{c_char, c_void};

use super::boundary::{guard, guard_value, non_null};
use super::cancel::fmr_cancel_flag;
use super::error::fmr_error;
use super::strings::{borrow_str, into_c_string};
use crate::error::{Error, ErrorCode, Result};
use crate::recipe::{Problem, RewardRequest, RunConfig, RunEnd, Stage, StepMetrics, Trainer};

/// Stage of a trainer (`fmr_trainer_new`).
pub type fmr_stage = u32;
/// Supervised fine-tuning on (problem, solution) rows.
pub const FMR_STAGE_SFT: fmr_stage = 1;
/// GRPO with the paper's rewards.
pub const FMR_STAGE_GRPO: fmr_stage = 2;

/// Adapter file formats (`fmr_trainer_save_adapter`).
pub type fmr_adapter_format = u32;
/// PEFT folder: `adapter_model.safetensors` + `adapter_config.json`.
pub const FMR_ADAPTER_PEFT: fmr_adapter_format = 1;
/// One GGUF LoRA file that llama.cpp loads.
pub const FMR_ADAPTER_GGUF: fmr_adapter_format = 2;
/// An fmr checkpoint (adapter, optimizer, RNG, data position) in one safetensors file.
pub const FMR_ADAPTER_CHECKPOINT: fmr_adapter_format = 3;

/// Why `fmr_trainer_run` returned successfully.
pub type fmr_run_end = u32;
/// All planned steps done.
pub const FMR_RUN_FINISHED: fmr_run_end = 1;
/// `max_minutes` reached.
pub const FMR_RUN_TIME_LIMIT: fmr_run_end = 2;
/// The progress callback returned false.
pub const FMR_RUN_STOPPED: fmr_run_end = 3;

/// What a reward callback sees for one completion. Strings are UTF-8 and NUL-terminated, with
/// their byte lengths (an embedded NUL in generated text is replaced by a space); they live for
/// the duration of the call only.
#[repr(C)]
pub struct fmr_reward_input {
    pub struct_size: u32,
    pub problem: *const c_char,
    pub problem_len: usize,
    pub answer: *const c_char,
    pub answer_len: usize,
    pub completion: *const c_char,
    pub completion_len: usize,
    pub completion_tokens: usize,
}

/// Host reward: write the reward to `*reward` and return true; return false to fail the step
/// (it then changes nothing and returns an error). Called on the thread running the step.
pub type fmr_reward_callback = Option<
    unsafe extern "C" fn(
        input: *const fmr_reward_input,
        user_data: *mut c_void,
        reward: *mut f64,
    ) -> bool,
>;

/// Progress of `fmr_trainer_run`: the finished step's metrics as JSON (valid during the call).
/// Return false to stop after this step (checkpoint and adapters are still written).
pub type fmr_progress_callback = Option<
    unsafe extern "C" fn(metrics_json: *const c_char, len: usize, user_data: *mut c_void) -> bool,
>;

/// A trainer. Not thread-safe: one call at a time.
pub struct fmr_trainer {
    trainer: Trainer,
}

struct SendPtr(*mut c_void);
// SAFETY: the pointer is only handed back to the host's callback, on the thread running the
// step; the host owns its thread-safety.
unsafe impl Send for SendPtr {}

/// Creates a trainer from a run configuration (JSON, see configs/ and docs in README):
/// loads the model, the data (`data.train`), and resumes from `out_dir/checkpoint.safetensors`
/// when it exists and `resume` is true. `stage` is `FMR_STAGE_SFT` or `FMR_STAGE_GRPO`.
/// On success writes a new handle to `*out` (release with `fmr_trainer_free`).
///
/// # Safety
/// `config_json` is valid for `config_json_len` bytes; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_trainer_new(
    config_json: *const c_char,
    config_json_len: usize,
    stage: fmr_stage,
    out: *mut *mut fmr_trainer,
) -> *mut fmr_error {
    guard(|| {
        non_null(out, "out")?;
        // SAFETY: valid for its length per the contract.
        let json = unsafe { borrow_str(config_json, config_json_len, "config_json") }?;
        let stage = match stage {
            FMR_STAGE_SFT => Stage::Sft,
            FMR_STAGE_GRPO => Stage::Grpo,
            other => {
                return Err(Error::new(
                    ErrorCode::OutOfRange,
                    format!("stage {other} is not FMR_STAGE_SFT (1) or FMR_STAGE_GRPO (2)"),
                ))
            }
        };
        let cfg = RunConfig::from_json(json)?;
        let trainer = Trainer::new(cfg, stage)?;
        // SAFETY: writable per the contract.
        unsafe { *out = Box::into_raw(Box::new(fmr_trainer { trainer })) };
        Ok(())
    })
}

/// Releases a trainer. NULL is a no-op.
///
/// # Safety
/// `trainer` is NULL or a live handle not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn fmr_trainer_free(trainer: *mut fmr_trainer) {
    guard_value((), || {
        if !trainer.is_null() {
            // SAFETY: came from Box::into_raw in fmr_trainer_new; freed once.
            drop(unsafe { Box::from_raw(trainer) });
        }
    })
}

/// Sets the host reward added to the built-in rewards with weight `weight` (GRPO). A NULL
/// `callback` removes it. `user_data` is passed back untouched.
///
/// # Safety
/// `trainer` is live; `callback` and `user_data` stay valid while the trainer may call them.
#[no_mangle]
pub unsafe extern "C" fn fmr_trainer_set_reward_callback(
    trainer: *mut fmr_trainer,
    callback: fmr_reward_callback,
    user_data: *mut c_void,
    weight: f64,
) -> *mut fmr_error {
    guard(|| {
        non_null(trainer, "trainer")?;
        if !weight.is_finite() {
            return Err(Error::invalid("reward weight must be finite"));
        }
        // SAFETY: live per the contract.
        let t = &mut unsafe { &mut *trainer }.trainer;
        let Some(cb) = callback else {
            t.set_custom_reward(None, None);
            return Ok(());
        };
        let ud = SendPtr(user_data);
        let reward: crate::recipe::CustomReward =
            Box::new(move |r: &RewardRequest<'_>| -> Result<f64> {
                let owned: Vec<std::ffi::CString> = [r.problem, r.answer, r.completion]
                    .iter()
                    .map(|s| std::ffi::CString::new(s.replace('\0', " ")).unwrap_or_default())
                    .collect();
                let input = fmr_reward_input {
                    struct_size: std::mem::size_of::<fmr_reward_input>() as u32,
                    problem: owned[0].as_ptr(),
                    problem_len: owned[0].as_bytes().len(),
                    answer: owned[1].as_ptr(),
                    answer_len: owned[1].as_bytes().len(),
                    completion: owned[2].as_ptr(),
                    completion_len: owned[2].as_bytes().len(),
                    completion_tokens: r.completion_tokens,
                };
                let mut value = 0.0f64;
                let ud = &ud;
                // SAFETY: the host's callback with its own user_data; input lives for the call.
                let ok = unsafe { cb(&input, ud.0, &mut value) };
                if !ok {
                    return Err(Error::new(
                        ErrorCode::Cancelled,
                        "the reward callback reported failure",
                    ));
                }
                Ok(value)
            });
        t.set_custom_reward(Some(reward), Some(weight));
        Ok(())
    })
}

fn write_json_out(s: String, json: *mut *mut c_char, len: *mut usize) {
    let (p, n) = into_c_string(s);
    // SAFETY: callers checked both pointers are non-NULL and writable.
    unsafe {
        *json = p;
        *len = n;
    }
}

/// Runs one optimizer step. `batch_json` (may be empty) is a JSON array of rows
/// `{"problem": …, "answer": …}` (GRPO) or `{"problem": …, "solution": …}` (SFT); empty means
/// the next rows of the run's data. `cancel` may be NULL. When `metrics_json`/`metrics_len` are
/// not NULL they receive the step's metrics as JSON (release with `fmr_string_free`); for GRPO
/// the object also holds `"rollouts"` (each completion with its rewards and advantage).
/// A cancelled step changes nothing and returns `FMR_ERR_CANCELLED`.
///
/// # Safety
/// `trainer` is live and used by no other thread; `batch_json` is valid for its length;
/// `cancel` is NULL or live; the out-pointers are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_trainer_step(
    trainer: *mut fmr_trainer,
    batch_json: *const c_char,
    batch_json_len: usize,
    cancel: *const fmr_cancel_flag,
    metrics_json: *mut *mut c_char,
    metrics_len: *mut usize,
) -> *mut fmr_error {
    guard(|| {
        non_null(trainer, "trainer")?;
        // SAFETY: valid for its length per the contract.
        let json = unsafe { borrow_str(batch_json, batch_json_len, "batch_json") }?;
        let rows: Option<Vec<Problem>> = if json.trim().is_empty() {
            None
        } else {
            Some(serde_json::from_str(json).map_err(|e| {
                Error::new(
                    ErrorCode::InvalidConfig,
                    format!("batch_json must be an array of {{problem, answer|solution}}: {e}"),
                )
            })?)
        };
        // SAFETY: NULL or live per the contract.
        let cancel = unsafe { cancel.as_ref() }.map(|c| c.flag.clone());
        // SAFETY: live per the contract.
        let t = &mut unsafe { &mut *trainer }.trainer;
        let value = match t.stage() {
            Stage::Sft => {
                if cancel
                    .as_ref()
                    .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
                {
                    return Err(Error::new(ErrorCode::Cancelled, "SFT step cancelled"));
                }
                serde_json::to_value(t.sft_step(rows.as_deref())?)?
            }
            Stage::Grpo => {
                let o = t.grpo_step(rows.as_deref(), cancel)?;
                let mut v = serde_json::to_value(&o.metrics)?;
                v["rollouts"] = serde_json::to_value(&o.rollouts)?;
                v
            }
        };
        if !metrics_json.is_null() && !metrics_len.is_null() {
            write_json_out(value.to_string(), metrics_json, metrics_len);
        }
        Ok(())
    })
}

/// Runs steps until the plan (`max_steps`, SFT epochs) or `max_minutes` is reached, `progress`
/// returns false, or `cancel` is set (returns `FMR_ERR_CANCELLED` after checkpointing the last
/// finished step). Checkpoints every `checkpoint_every` steps; at the end writes the
/// checkpoint, `adapter/` (PEFT), `adapter.gguf` and `chart.png` in `out_dir`. `progress`,
/// `cancel` and `end` may be NULL; `*end` receives an `FMR_RUN_*` value.
///
/// # Safety
/// `trainer` is live and used by no other thread; `cancel` is NULL or live; `end` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_trainer_run(
    trainer: *mut fmr_trainer,
    progress: fmr_progress_callback,
    user_data: *mut c_void,
    cancel: *const fmr_cancel_flag,
    end: *mut fmr_run_end,
) -> *mut fmr_error {
    guard(|| {
        non_null(trainer, "trainer")?;
        // SAFETY: NULL or live per the contract.
        let cancel = unsafe { cancel.as_ref() }.map(|c| c.flag.clone());
        // SAFETY: live per the contract.
        let t = &mut unsafe { &mut *trainer }.trainer;
        let mut on_step = |m: &StepMetrics| -> bool {
            let Some(cb) = progress else { return true };
            let s = serde_json::to_string(m).unwrap_or_default();
            let c = std::ffi::CString::new(s).unwrap_or_default();
            // SAFETY: the host's callback with its own user_data; the string lives for the call.
            unsafe { cb(c.as_ptr(), c.as_bytes().len(), user_data) }
        };
        let r = t.run(&mut on_step, cancel)?;
        if !end.is_null() {
            let v = match r {
                RunEnd::Finished => FMR_RUN_FINISHED,
                RunEnd::TimeLimit => FMR_RUN_TIME_LIMIT,
                RunEnd::StoppedByCallback => FMR_RUN_STOPPED,
            };
            // SAFETY: writable per the contract.
            unsafe { *end = v };
        }
        Ok(())
    })
}

/// Optimizer steps taken (resumed steps included); 0 for NULL.
///
/// # Safety
/// `trainer` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn fmr_trainer_step_count(trainer: *const fmr_trainer) -> u64 {
    guard_value(0, || {
        // SAFETY: NULL or live per the contract.
        unsafe { trainer.as_ref() }.map_or(0, |t| t.trainer.step_count())
    })
}

/// Writes the adapter being trained to `path` (UTF-8) in `format` (`FMR_ADAPTER_*`): a folder
/// for PEFT, a file otherwise. Files are written atomically.
///
/// # Safety
/// `trainer` is live; `path` is valid for `path_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn fmr_trainer_save_adapter(
    trainer: *const fmr_trainer,
    path: *const c_char,
    path_len: usize,
    format: fmr_adapter_format,
) -> *mut fmr_error {
    guard(|| {
        non_null(trainer, "trainer")?;
        // SAFETY: valid for its length per the contract.
        let path = unsafe { borrow_str(path, path_len, "path") }?;
        if path.is_empty() {
            return Err(Error::invalid("path must not be empty"));
        }
        // SAFETY: live per the contract.
        let t = &unsafe { &*trainer }.trainer;
        let p = std::path::Path::new(path);
        match format {
            FMR_ADAPTER_PEFT => t.save_peft(p),
            FMR_ADAPTER_GGUF => t.save_gguf(p),
            FMR_ADAPTER_CHECKPOINT => t.save_checkpoint_to(p),
            other => Err(Error::new(
                ErrorCode::OutOfRange,
                format!("adapter format {other} is not FMR_ADAPTER_PEFT/GGUF/CHECKPOINT (1..3)"),
            )),
        }
    })
}

/// Replaces the adapter being trained with one from a PEFT folder or an fmr checkpoint file
/// (same rank and targets as the run). The optimizer state is kept; the engine switches to it
/// before the next rollout.
///
/// # Safety
/// `trainer` is live and used by no other thread; `path` is valid for `path_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn fmr_trainer_load_adapter(
    trainer: *mut fmr_trainer,
    path: *const c_char,
    path_len: usize,
) -> *mut fmr_error {
    guard(|| {
        non_null(trainer, "trainer")?;
        // SAFETY: valid for its length per the contract.
        let path = unsafe { borrow_str(path, path_len, "path") }?;
        // SAFETY: live per the contract.
        let t = &mut unsafe { &mut *trainer }.trainer;
        t.load_adapter(std::path::Path::new(path))
    })
}
