//! `fmr_trainer`: the SFT and GRPO loops of the recipe behind one handle — step-wise or whole
//! runs, a host reward callback, adapters in and out.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::boundary::{exclusive, guard, guard_value, non_null};
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
    /// Size of this struct in the library that sent it: read a field only when `struct_size`
    /// covers it.
    pub struct_size: u32,
    /// The problem text.
    pub problem: *const c_char,
    /// Length of `problem` in bytes.
    pub problem_len: usize,
    /// The gold answer of the problem.
    pub answer: *const c_char,
    /// Length of `answer` in bytes.
    pub answer_len: usize,
    /// The completion to score.
    pub completion: *const c_char,
    /// Length of `completion` in bytes.
    pub completion_len: usize,
    /// Length of the completion in tokens.
    pub completion_tokens: usize,
}

/// Host reward: write a finite reward to `*reward` and return true; return false to fail the
/// step, which then changes nothing and returns `FMR_ERR_CALLBACK_FAILED`. Called on the thread
/// running the step; it must not call back into the same trainer.
pub type fmr_reward_callback = Option<
    unsafe extern "C" fn(
        input: *const fmr_reward_input,
        user_data: *mut c_void,
        reward: *mut f64,
    ) -> bool,
>;

/// Progress of `fmr_trainer_run`: the finished step's metrics as JSON (valid during the call).
/// Return false to stop after this step (checkpoint and adapters are still written). Called on
/// the thread running the run; it may call `fmr_trainer_step_count`, and gets `FMR_ERR_BUSY`
/// from the trainer's other functions.
pub type fmr_progress_callback = Option<
    unsafe extern "C" fn(metrics_json: *const c_char, len: usize, user_data: *mut c_void) -> bool,
>;

/// A trainer. One call at a time (a concurrent call fails with `FMR_ERR_BUSY`), except
/// `fmr_trainer_step_count`, which any thread may call at any time, during a run too.
pub struct fmr_trainer {
    trainer: Mutex<Trainer>,
    /// Optimizer steps taken, published after each step for `fmr_trainer_step_count`.
    steps: AtomicU64,
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
        let steps = AtomicU64::new(trainer.step_count());
        // SAFETY: writable per the contract.
        unsafe {
            *out = Box::into_raw(Box::new(fmr_trainer {
                trainer: Mutex::new(trainer),
                steps,
            }))
        };
        Ok(())
    })
}

/// Releases a trainer. NULL is a no-op.
///
/// # Safety
/// `trainer` is NULL or a live handle that no call is using (not from inside its own
/// callbacks).
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
/// `callback` removes it. `user_data` is passed back untouched. On error the trainer keeps the
/// callback it had. One call at a time.
///
/// # Safety
/// `trainer` is live; `callback` and `user_data` stay valid until they are replaced or the
/// trainer is freed.
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
        // SAFETY: live per the contract; its state is behind a mutex.
        let mut t = exclusive(&unsafe { &*trainer }.trainer, "trainer")?;
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
                        ErrorCode::CallbackFailed,
                        "the host reward callback returned false",
                    ));
                }
                Ok(value)
            });
        t.set_custom_reward(Some(reward), Some(weight));
        Ok(())
    })
}

fn write_json_out(s: String, json: *mut *mut c_char, len: *mut usize) -> Result<()> {
    let (p, n) = into_c_string(s)?;
    // SAFETY: callers checked `json` is non-NULL and writable, `len` NULL or writable.
    unsafe {
        *json = p;
        if !len.is_null() {
            *len = n;
        }
    }
    Ok(())
}

/// Runs one optimizer step. `batch_json` (may be empty) is a JSON array of rows
/// `{"problem": …, "answer": …}` (GRPO) or `{"problem": …, "solution": …}` (SFT); empty means
/// the next rows of the run's data. `cancel` may be NULL. When `metrics_json` is not NULL it
/// receives the step's metrics as JSON (release with `fmr_string_free`) and `*metrics_len`,
/// when not NULL, its length; for GRPO the object also holds `"rollouts"` (each completion with
/// its rewards and advantage). A step that fails changes nothing: a cancelled one returns
/// `FMR_ERR_CANCELLED`, one whose reward callback failed `FMR_ERR_CALLBACK_FAILED`. One call at
/// a time.
///
/// # Safety
/// `trainer` is live; `batch_json` is valid for its length; `cancel` is NULL or live; the
/// out-pointers are NULL or writable.
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
        // SAFETY: live per the contract; its state is behind a mutex.
        let handle = unsafe { &*trainer };
        let mut t = exclusive(&handle.trainer, "trainer")?;
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
        handle.steps.store(t.step_count(), Ordering::SeqCst);
        if !metrics_json.is_null() {
            write_json_out(value.to_string(), metrics_json, metrics_len)?;
        }
        Ok(())
    })
}

/// Runs steps until the plan (`max_steps`, SFT epochs) or `max_minutes` is reached, `progress`
/// returns false, or `cancel` is set (returns `FMR_ERR_CANCELLED` after checkpointing the last
/// finished step). Checkpoints every `checkpoint_every` steps; at the end writes the
/// checkpoint, `adapter/` (PEFT), `adapter.gguf` and `chart.png` in `out_dir`. `progress`,
/// `cancel` and `end` may be NULL; `*end` receives an `FMR_RUN_*` value. Any other failure,
/// a failing reward callback (`FMR_ERR_CALLBACK_FAILED`) included, returns its error without
/// a checkpoint: the failed step changed nothing, and the steps since the last periodic
/// checkpoint are kept in the trainer (save them with `fmr_trainer_save_adapter`). One call at
/// a time; other threads may poll `fmr_trainer_step_count` meanwhile.
///
/// # Safety
/// `trainer` is live; `cancel` is NULL or live; `end` is NULL or writable.
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
        // SAFETY: live per the contract; its state is behind a mutex.
        let handle = unsafe { &*trainer };
        let mut t = exclusive(&handle.trainer, "trainer")?;
        let steps = &handle.steps;
        let mut on_step = |m: &StepMetrics| -> bool {
            steps.store(m.step, Ordering::SeqCst);
            let Some(cb) = progress else { return true };
            let s = serde_json::to_string(m).unwrap_or_default();
            let c = std::ffi::CString::new(s).unwrap_or_default();
            // SAFETY: the host's callback with its own user_data; the string lives for the call.
            unsafe { cb(c.as_ptr(), c.as_bytes().len(), user_data) }
        };
        let r = t.run(&mut on_step, cancel);
        handle.steps.store(t.step_count(), Ordering::SeqCst);
        let r = r?;
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

/// Optimizer steps taken (resumed steps included); 0 for NULL. Thread-safe at any time: a UI
/// thread may poll it while another thread runs `fmr_trainer_run` or `fmr_trainer_step`, and a
/// progress callback may call it. During a step it reports the steps finished before it.
///
/// # Safety
/// `trainer` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn fmr_trainer_step_count(trainer: *const fmr_trainer) -> u64 {
    guard_value(0, || {
        // SAFETY: NULL or live per the contract.
        unsafe { trainer.as_ref() }.map_or(0, |t| t.steps.load(Ordering::SeqCst))
    })
}

/// Writes the adapter being trained to `path` (UTF-8) in `format` (`FMR_ADAPTER_*`): a folder
/// for PEFT, a file otherwise. Files are written atomically. One call at a time: during
/// `fmr_trainer_run` (from another thread or its progress callback) it fails with
/// `FMR_ERR_BUSY`; a run writes its adapters itself (`checkpoint_every`, and at the end).
///
/// # Safety
/// `trainer` is live; `path` is valid for `path_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn fmr_trainer_save_adapter(
    trainer: *mut fmr_trainer,
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
        // SAFETY: live per the contract; its state is behind a mutex.
        let t = exclusive(&unsafe { &*trainer }.trainer, "trainer")?;
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
/// before the next rollout. One call at a time.
///
/// # Safety
/// `trainer` is live; `path` is valid for `path_len` bytes.
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
        // SAFETY: live per the contract; its state is behind a mutex.
        let mut t = exclusive(&unsafe { &*trainer }.trainer, "trainer")?;
        t.load_adapter(std::path::Path::new(path))
    })
}
