//! `fmr_model`: a loaded GGUF model.

use super::boundary::{guard, guard_value, non_null};
use super::error::fmr_error;
use super::growable::{init_in, read_in, Growable};
use super::strings::borrow_str;
use crate::engine::{Model, ModelParams, SplitMode};
use crate::error::Error;
use std::ffi::c_char;
use std::sync::Arc;

/// A loaded model. Immutable: a `const fmr_model*` may be used from several threads at once
/// (tokenizing, creating generators). Generators keep the model alive on their own, so
/// `fmr_model_free` may be called while generators made from it still run.
pub struct fmr_model {
    pub(crate) model: Arc<Model>,
    /// `Model::fallback` as a C string.
    fallback: Option<std::ffi::CString>,
}

/// Model loading parameters. Initialise with `fmr_model_params_init(&p, sizeof p)`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fmr_model_params {
    /// Size of this struct in the caller's header (`fmr_model_params_init` sets it).
    pub struct_size: u32,
    /// Layers to offload to a GPU: 0 = none (CPU only), -1 = all.
    pub n_gpu_layers: i32,
    /// The GPU that holds the model: an index among the GPUs of `fmr_device_get`'s list.
    pub main_gpu: i32,
    /// `FMR_SPLIT_NONE` (everything on `main_gpu`), `FMR_SPLIT_LAYER`, `FMR_SPLIT_ROW`.
    pub split_mode: fmr_split_mode,
    /// With no usable GPU (none loaded, a bad `main_gpu`, too little memory), load on the CPU
    /// instead of failing; `fmr_model_fallback` then says what was given up.
    pub cpu_fallback: bool,
    /// Memory-map the file.
    pub use_mmap: bool,
}

/// How a model is split over GPUs (`fmr_model_params.split_mode`). Fixed values.
pub type fmr_split_mode = u32;
/// Everything on `main_gpu`.
pub const FMR_SPLIT_NONE: fmr_split_mode = 0;
/// Whole layers spread over the GPUs.
pub const FMR_SPLIT_LAYER: fmr_split_mode = 1;
/// Rows of each matrix spread over the GPUs.
pub const FMR_SPLIT_ROW: fmr_split_mode = 2;

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
        main_gpu: d.main_gpu,
        split_mode: d.split_mode as u32,
        cpu_fallback: d.cpu_fallback,
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
            mp.main_gpu = p.main_gpu;
            mp.split_mode = match p.split_mode {
                FMR_SPLIT_NONE => SplitMode::None,
                FMR_SPLIT_LAYER => SplitMode::Layer,
                FMR_SPLIT_ROW => SplitMode::Row,
                other => {
                    return Err(Error::invalid(format!(
                        "split_mode {other} is not FMR_SPLIT_*"
                    )))
                }
            };
            mp.cpu_fallback = p.cpu_fallback;
            mp.use_mmap = p.use_mmap;
        }
        let model = Model::load(path, &mp)?;
        let fallback = model
            .fallback()
            .map(|f| std::ffi::CString::new(f.replace('\0', "")).unwrap_or_default());
        let handle = Box::into_raw(Box::new(fmr_model {
            model: Arc::new(model),
            fallback,
        }));
        // SAFETY: out is writable per the contract.
        unsafe { *out = handle };
        Ok(())
    })
}

/// When the model was asked for GPU layers with `cpu_fallback` and went to the CPU: what it fell
/// back from and why (UTF-8, NUL-terminated, owned by the model; `*len` excludes the NUL).
/// `*text` is NULL and `*len` 0 when the model is where it was asked to be. Thread-safe.
///
/// # Safety
/// `model` is live; `text` and `len` are writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_model_fallback(
    model: *const fmr_model,
    text: *mut *const c_char,
    len: *mut usize,
) -> *mut fmr_error {
    guard(|| {
        non_null(model, "model")?;
        non_null(text, "text")?;
        non_null(len, "len")?;
        // SAFETY: live per the contract.
        let m = unsafe { &*model };
        let (p, n) = match &m.fallback {
            Some(c) => (c.as_ptr(), c.as_bytes().len()),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: writable per the contract.
        unsafe {
            *text = p;
            *len = n;
        }
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
