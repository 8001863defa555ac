//! `fmr_model`: a loaded GGUF model.

use super::boundary::{guard, guard_value, non_null};
use super::error::fmr_error;
use super::growable::{init_in, read_in, Growable};
use super::strings::borrow_str;
use crate::engine::{Model, ModelParams};
use crate::error::Error;
use std::ffi::c_char;
use std::sync::Arc;

/// A loaded model. Immutable: a `const fmr_model*` may be used from several threads at once
/// (tokenizing, creating generators). Generators keep the model alive on their own, so
/// `fmr_model_free` may be called while generators made from it still run.
pub struct fmr_model {
    pub(crate) model: Arc<Model>,
}

/// Model loading parameters. Initialise with `fmr_model_params_init(&p, sizeof p)`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fmr_model_params {
    /// Size of this struct in the caller's header (`fmr_model_params_init` sets it).
    pub struct_size: u32,
    /// Layers to offload to a GPU: 0 = none (CPU), -1 = all.
    pub n_gpu_layers: i32,
    /// Memory-map the file.
    pub use_mmap: bool,
}

// SAFETY: repr(C), struct_size first, plain data.
unsafe impl Growable for fmr_model_params {
    const NAME: &'static str = "fmr_model_params";
    const MIN_SIZE: usize = std::mem::size_of::<fmr_model_params>();
    const INIT: &'static str = "initialise it with fmr_model_params_init(&p, sizeof p)";
}

fn default_model_params() -> fmr_model_params {
    let d = ModelParams::default();
    fmr_model_params {
        struct_size: std::mem::size_of::<fmr_model_params>() as u32,
        n_gpu_layers: d.n_gpu_layers,
        use_mmap: d.use_mmap,
    }
}

/// Fills `*params` with the defaults (CPU only, mmap on) and sets `struct_size` to `size`:
/// pass `sizeof` the struct in your header. Does nothing when `params` is NULL or `size` is
/// smaller than the first version of the struct.
///
/// # Safety
/// `params` is NULL or writable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn fmr_model_params_init(params: *mut fmr_model_params, size: usize) {
    // SAFETY: NULL or writable for size bytes per the contract.
    guard_value((), || unsafe {
        init_in(params, size, default_model_params())
    })
}

/// Loads a GGUF model from `path` (UTF-8, `path_len` bytes, no NUL needed). `params` may be NULL
/// for defaults. On success writes a new handle to `*out` (release with `fmr_model_free`).
/// Thread-safe.
///
/// # Safety
/// `path` is valid for `path_len` bytes; `params` is NULL or valid for its `struct_size`;
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_model_load(
    path: *const c_char,
    path_len: usize,
    params: *const fmr_model_params,
    out: *mut *mut fmr_model,
) -> *mut fmr_error {
    guard(|| {
        non_null(out, "out")?;
        non_null(path, "path")?;
        // SAFETY: valid for path_len bytes per the contract.
        let path = unsafe { borrow_str(path, path_len, "path") }?;
        if path.is_empty() {
            return Err(Error::invalid("path must not be empty"));
        }
        let mut mp = ModelParams::default();
        if !params.is_null() {
            // SAFETY: valid for its struct_size per the contract.
            let p = unsafe { read_in(params, default_model_params()) }?;
            mp.n_gpu_layers = p.n_gpu_layers;
            mp.use_mmap = p.use_mmap;
        }
        let model = Model::load(path, &mp)?;
        let handle = Box::into_raw(Box::new(fmr_model {
            model: Arc::new(model),
        }));
        // SAFETY: out is writable per the contract.
        unsafe { *out = handle };
        Ok(())
    })
}

/// Releases a model handle. NULL is a no-op. Generators made from it keep the model alive.
///
/// # Safety
/// `model` is NULL or a live handle not yet freed.
#[no_mangle]
pub unsafe extern "C" fn fmr_model_free(model: *mut fmr_model) {
    guard_value((), || {
        if !model.is_null() {
            // SAFETY: came from Box::into_raw in fmr_model_load; freed once.
            drop(unsafe { Box::from_raw(model) });
        }
    })
}

/// Tokenizes `text` into the caller's buffer `tokens` of capacity `capacity`. Writes the number
/// of tokens to `*n_tokens`. When the buffer is too small nothing is written to `tokens`,
/// `*n_tokens` receives the size needed and the call still succeeds: call again with a larger
/// buffer (`tokens` may be NULL when `capacity` is 0). Special-token text is parsed; BOS is added
/// when `add_special` and the model asks for it. Thread-safe (const handle).
///
/// # Safety
/// `model` is a live handle; `text` is valid for `text_len` bytes; `tokens` is writable for
/// `capacity` ids; `n_tokens` is writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_model_tokenize(
    model: *const fmr_model,
    text: *const c_char,
    text_len: usize,
    add_special: bool,
    tokens: *mut i32,
    capacity: usize,
    n_tokens: *mut usize,
) -> *mut fmr_error {
    guard(|| {
        non_null(model, "model")?;
        non_null(n_tokens, "n_tokens")?;
        if capacity > 0 {
            non_null(tokens, "tokens")?;
        }
        // SAFETY: live handle per the contract.
        let model = unsafe { &*model };
        // SAFETY: valid for text_len bytes per the contract.
        let text = unsafe { borrow_str(text, text_len, "text") }?;
        let ids = model.model.tokenize(text, add_special, true)?;
        if ids.len() <= capacity {
            // SAFETY: tokens is writable for capacity >= ids.len() ids.
            unsafe { std::ptr::copy_nonoverlapping(ids.as_ptr(), tokens, ids.len()) };
        }
        // SAFETY: writable per the contract.
        unsafe { *n_tokens = ids.len() };
        Ok(())
    })
}

/// Number of tokens in the model's vocabulary (0 for NULL).
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fmr_model_n_vocab(model: *const fmr_model) -> usize {
    // SAFETY: NULL or live per the contract.
    guard_value(0, || {
        unsafe { model.as_ref() }.map_or(0, |m| m.model.n_vocab())
    })
}
