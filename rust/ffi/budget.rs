//! `fmr_budget`: the token scheduler (a ridge head over a text encoder) — fit, save, load and
//! predict per-problem token budgets.

use super::boundary::{exclusive, guard, guard_value, non_null};
use super::error::fmr_error;
use super::model::fmr_model;
use super::strings::borrow_str;
use crate::budget::{BudgetExample, BudgetModel, BudgetPredictor, EncoderOptions};
use crate::error::{Error, Result};
use std::ffi::c_char;
use std::sync::{Arc, Mutex};

/// A token-budget predictor: a fitted head and its encoder. Prediction takes one call at a
/// time per handle (`FMR_ERR_BUSY` otherwise); `fmr_budget_save` may run beside it.
pub struct fmr_budget {
    predictor: Mutex<BudgetPredictor>,
    head: BudgetModel,
}

/// The policy model of `model`, or none for NULL.
///
/// # Safety
/// `model` is NULL or live.
unsafe fn policy(model: *const fmr_model) -> Option<Arc<crate::engine::Model>> {
    // SAFETY: NULL or live per the contract.
    unsafe { model.as_ref() }.map(|m| m.model.clone())
}

fn into_handle(p: BudgetPredictor) -> *mut fmr_budget {
    let head = p.model().clone();
    Box::into_raw(Box::new(fmr_budget {
        predictor: Mutex::new(p),
        head,
    }))
}

/// Fits a budget head on logged problems and builds its encoder.
///
/// `encoder_json`: `{"kind": "prompt", "prompt": {...}, "threads": 0, "max_tokens": 1024}` (the
/// policy model's mean-pooled prompt hidden state; needs `model`) or `{"kind": "onnx",
/// "model": "encoder.onnx", "tokenizer": "tokenizer.json", "runtime": "libonnxruntime.so",
/// "threads": 1, "max_tokens": 256}` (builds with feature `onnx`; `model` may be NULL).
/// `examples_json`: an array of `{"problem": "...", "lengths": [tokens, ...]}`, at least 2.
/// On success writes a new handle to `*out` (release with `fmr_budget_free`).
///
/// # Safety
/// `model` is NULL or live; strings are valid for their lengths; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_budget_fit(
    model: *const fmr_model,
    encoder_json: *const c_char,
    encoder_json_len: usize,
    examples_json: *const c_char,
    examples_json_len: usize,
    out: *mut *mut fmr_budget,
) -> *mut fmr_error {
    guard(|| {
        non_null(out, "out")?;
        // SAFETY: valid for their lengths per the contract.
        let enc = unsafe { borrow_str(encoder_json, encoder_json_len, "encoder_json") }?;
        // SAFETY: as above.
        let ex = unsafe { borrow_str(examples_json, examples_json_len, "examples_json") }?;
        let examples: Vec<BudgetExample> =
            serde_json::from_str(ex).map_err(|e| Error::invalid(format!("examples_json: {e}")))?;
        // SAFETY: NULL or live per the contract.
        let encoder = EncoderOptions::from_json(enc)?.build(unsafe { policy(model) })?;
        let p = BudgetPredictor::fit(encoder, &examples)?;
        // SAFETY: writable per the contract.
        unsafe { *out = into_handle(p) };
        Ok(())
    })
}

/// Loads a head saved by `fmr_budget_save` from folder `dir` and builds its encoder from
/// `encoder_json` (as for `fmr_budget_fit`; its kind and width must match the head's).
///
/// # Safety
/// `model` is NULL or live; strings are valid for their lengths; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_budget_load(
    model: *const fmr_model,
    dir: *const c_char,
    dir_len: usize,
    encoder_json: *const c_char,
    encoder_json_len: usize,
    out: *mut *mut fmr_budget,
) -> *mut fmr_error {
    guard(|| {
        non_null(out, "out")?;
        // SAFETY: valid for their lengths per the contract.
        let dir = unsafe { borrow_str(dir, dir_len, "dir") }?;
        // SAFETY: as above.
        let enc = unsafe { borrow_str(encoder_json, encoder_json_len, "encoder_json") }?;
        let head = BudgetModel::load(dir.as_ref())?;
        // SAFETY: NULL or live per the contract.
        let encoder = EncoderOptions::from_json(enc)?.build(unsafe { policy(model) })?;
        let p = BudgetPredictor::new(head, encoder)?;
        // SAFETY: writable per the contract.
        unsafe { *out = into_handle(p) };
        Ok(())
    })
}

/// Writes the head to folder `dir` (`head.safetensors` and `head.json`; the folder is
/// created). Safe beside a prediction on the same handle.
///
/// # Safety
/// `budget` is live; `dir` is valid for `dir_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn fmr_budget_save(
    budget: *const fmr_budget,
    dir: *const c_char,
    dir_len: usize,
) -> *mut fmr_error {
    guard(|| {
        non_null(budget, "budget")?;
        // SAFETY: valid for its length per the contract.
        let dir = unsafe { borrow_str(dir, dir_len, "dir") }?;
        // SAFETY: live per the contract.
        unsafe { &*budget }.head.save(dir.as_ref())
    })
}

/// Cross-validated Spearman ρ of the head's fit (out-of-fold predictions against the
/// problems' mean lengths, within each fold, averaged over the folds); NaN when it could not
/// be computed or `budget` is NULL.
///
/// # Safety
/// `budget` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn fmr_budget_cv_spearman(budget: *const fmr_budget) -> f64 {
    guard_value(f64::NAN, || {
        // SAFETY: NULL or live per the contract.
        unsafe { budget.as_ref() }
            .and_then(|b| b.head.meta().cv_spearman)
            .unwrap_or(f64::NAN)
    })
}

fn predict_one(
    budget: &fmr_budget,
    problem: &str,
    f: impl FnOnce(&mut BudgetPredictor, &str) -> Result<f64>,
) -> Result<f64> {
    let mut p = exclusive(&budget.predictor, "budget")?;
    f(&mut p, problem)
}

/// The token budget of one problem: the predicted `quantile` (0..=1) of its completion
/// lengths × `margin`, rounded up. Use it as the problem's `max_tokens` (or thinking budget).
///
/// # Safety
/// `budget` is live; `problem` is valid for `problem_len` bytes; `tokens` is writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_budget_predict(
    budget: *mut fmr_budget,
    problem: *const c_char,
    problem_len: usize,
    quantile: f64,
    margin: f64,
    tokens: *mut usize,
) -> *mut fmr_error {
    guard(|| {
        non_null(budget, "budget")?;
        non_null(tokens, "tokens")?;
        // SAFETY: valid for its length per the contract.
        let problem = unsafe { borrow_str(problem, problem_len, "problem") }?;
        // SAFETY: live per the contract.
        let b = unsafe { &*budget };
        let t = predict_one(b, problem, |p, text| {
            Ok(p.predict_budget(&[text], quantile, margin)?[0] as f64)
        })?;
        // SAFETY: writable per the contract.
        unsafe { *tokens = t as usize };
        Ok(())
    })
}

/// The predicted mean completion length of one problem, in tokens.
///
/// # Safety
/// `budget` is live; `problem` is valid for `problem_len` bytes; `mean` is writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_budget_predict_mean(
    budget: *mut fmr_budget,
    problem: *const c_char,
    problem_len: usize,
    mean: *mut f64,
) -> *mut fmr_error {
    guard(|| {
        non_null(budget, "budget")?;
        non_null(mean, "mean")?;
        // SAFETY: valid for its length per the contract.
        let problem = unsafe { borrow_str(problem, problem_len, "problem") }?;
        // SAFETY: live per the contract.
        let b = unsafe { &*budget };
        let m = predict_one(b, problem, |p, text| Ok(p.predict_mean(&[text])?[0]))?;
        // SAFETY: writable per the contract.
        unsafe { *mean = m };
        Ok(())
    })
}

/// Releases a budget predictor. NULL is a no-op.
///
/// # Safety
/// `budget` is NULL or live, not in use by another thread, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn fmr_budget_free(budget: *mut fmr_budget) {
    guard_value((), || {
        if !budget.is_null() {
            // SAFETY: came from Box::into_raw in into_handle; freed once.
            drop(unsafe { Box::from_raw(budget) });
        }
    })
}
