//! Checks a GGUF file before llama.cpp loads it.
//!
//! llama.cpp reports most damage as a load error, but a few metadata values reach `GGML_ASSERT`s
//! (which abort the host process) or divisions by zero before they are checked: the layer count
//! outside `1..=512`, zero attention heads, a KV-head count that does not divide the head count,
//! a zero embedding width, more experts than llama.cpp supports. This module reads the header
//! with ggml's own GGUF parser (which rejects bad magic, versions, counts, types and truncated
//! headers without aborting) and checks those values first, so that such files give
//! [`ErrorCode::ModelLoad`] instead.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::ptr::NonNull;

use llama_cpp_sys_2 as sys;

use crate::error::{Error, ErrorCode, Result};

/// llama.cpp's `LLAMA_MAX_LAYERS` and `LLAMA_MAX_EXPERTS` (llama-hparams.h).
const MAX_LAYERS: u64 = 512;
const MAX_EXPERTS: u64 = 1024;

/// An open GGUF header (no tensor data), freed on drop.
struct Header(NonNull<sys::gguf_context>);

impl Drop for Header {
    fn drop(&mut self) {
        // SAFETY: the context came from gguf_init_from_file and is freed once.
        unsafe { sys::gguf_free(self.0.as_ptr()) }
    }
}

/// A metadata value as the checks need it.
enum Value {
    /// An unsigned or signed integer (negative values are kept as they are).
    Int(i64),
    /// An array of integers (e.g. per-layer head counts).
    Ints(Vec<i64>),
    Str(String),
    Other,
}

impl Header {
    fn open(c_path: &CString) -> Option<Header> {
        let params = sys::gguf_init_params {
            no_alloc: true,
            ctx: std::ptr::null_mut(),
        };
        // SAFETY: a valid NUL-terminated path; no ggml context is requested. ggml's parser
        // returns NULL for any file it cannot read.
        NonNull::new(unsafe { sys::gguf_init_from_file(c_path.as_ptr(), params) }).map(Header)
    }

    fn get(&self, key: &str) -> Option<Value> {
        let k = CString::new(key).ok()?;
        let c = self.0.as_ptr();
        // SAFETY: valid context and key.
        let id = unsafe { sys::gguf_find_key(c, k.as_ptr()) };
        if id < 0 {
            return None;
        }
        // SAFETY: `id` is a key of this context and every getter is called for its own type
        // (ggml asserts the type otherwise); array data holds `n` elements of its type.
        let v = unsafe {
            match sys::gguf_get_kv_type(c, id) {
                sys::GGUF_TYPE_UINT8 => Value::Int(sys::gguf_get_val_u8(c, id) as i64),
                sys::GGUF_TYPE_UINT16 => Value::Int(sys::gguf_get_val_u16(c, id) as i64),
                sys::GGUF_TYPE_UINT32 => Value::Int(sys::gguf_get_val_u32(c, id) as i64),
                sys::GGUF_TYPE_INT32 => Value::Int(sys::gguf_get_val_i32(c, id) as i64),
                sys::GGUF_TYPE_UINT64 => Value::Int(sys::gguf_get_val_u64(c, id) as i64),
                sys::GGUF_TYPE_INT64 => Value::Int(sys::gguf_get_val_i64(c, id)),
                sys::GGUF_TYPE_STRING => Value::Str(
                    CStr::from_ptr(sys::gguf_get_val_str(c, id))
                        .to_string_lossy()
                        .into_owned(),
                ),
                sys::GGUF_TYPE_ARRAY => {
                    let n = sys::gguf_get_arr_n(c, id);
                    let data = sys::gguf_get_arr_data(c, id);
                    match sys::gguf_get_arr_type(c, id) {
                        sys::GGUF_TYPE_UINT32 if !data.is_null() => Value::Ints(
                            std::slice::from_raw_parts(data as *const u32, n)
                                .iter()
                                .map(|&x| x as i64)
                                .collect(),
                        ),
                        sys::GGUF_TYPE_INT32 if !data.is_null() => Value::Ints(
                            std::slice::from_raw_parts(data as *const i32, n)
                                .iter()
                                .map(|&x| x as i64)
                                .collect(),
                        ),
                        _ => Value::Other,
                    }
                }
                _ => Value::Other,
            }
        };
        Some(v)
    }
}

/// What the pre-load check learned of a model.
pub(super) struct Summary {
    /// Transformer blocks (`{arch}.block_count`).
    pub layers: u32,
}

/// Checks `path` (already known to exist) before llama.cpp loads it; see the module docs.
pub(super) fn check_model_file(path: &Path, c_path: &CString) -> Result<Summary> {
    let bad = |why: String| {
        Error::new(
            ErrorCode::ModelLoad,
            format!("'{}' is not a usable GGUF model: {why}", path.display()),
        )
    };
    let header = Header::open(c_path).ok_or_else(|| {
        bad("its header, metadata or tensor table is corrupt or truncated".into())
    })?;
    let arch = match header.get("general.architecture") {
        Some(Value::Str(a)) if !a.is_empty() => a,
        _ => return Err(bad("general.architecture is missing or not a string".into())),
    };
    let int = |key: &str| -> Result<Option<i64>> {
        match header.get(&format!("{arch}.{key}")) {
            None => Ok(None),
            Some(Value::Int(v)) => Ok(Some(v)),
            Some(_) => Err(bad(format!("{arch}.{key} is not an integer"))),
        }
    };
    let layers =
        int("block_count")?.ok_or_else(|| bad(format!("{arch}.block_count is missing")))?;
    if !(1..=MAX_LAYERS as i64).contains(&layers) {
        return Err(bad(format!(
            "{arch}.block_count is {layers}, outside 1..={MAX_LAYERS}"
        )));
    }
    if let Some(n) = int("nextn_predict_layers")? {
        if !(0..=layers).contains(&n) {
            return Err(bad(format!(
                "{arch}.nextn_predict_layers {n} exceeds the layer count"
            )));
        }
    }
    if let Some(e) = int("embedding_length")? {
        if e < 1 {
            return Err(bad(format!("{arch}.embedding_length is {e}")));
        }
    }
    if let Some(e) = int("expert_count")? {
        if !(0..=MAX_EXPERTS as i64).contains(&e) {
            return Err(bad(format!(
                "{arch}.expert_count is {e}, outside 0..={MAX_EXPERTS}"
            )));
        }
    }
    // Head counts: one value for every layer, or one per layer. A layer without attention may
    // have 0 heads in a per-layer array; a single value of 0 leaves no attention at all.
    let heads = |key: &str| -> Result<Option<Vec<i64>>> {
        match header.get(&format!("{arch}.{key}")) {
            None => Ok(None),
            Some(Value::Int(v)) if v >= 1 => Ok(Some(vec![v; layers as usize])),
            Some(Value::Int(v)) => Err(bad(format!("{arch}.{key} is {v}"))),
            Some(Value::Ints(v)) if v.len() == layers as usize && v.iter().all(|&x| x >= 0) => {
                Ok(Some(v))
            }
            Some(_) => Err(bad(format!(
                "{arch}.{key} must be a positive integer or one count per layer"
            ))),
        }
    };
    let n_head = heads("attention.head_count")?;
    let n_head_kv = heads("attention.head_count_kv")?;
    if let (Some(h), Some(kv)) = (&n_head, &n_head_kv) {
        for (layer, (&h, &kv)) in h.iter().zip(kv).enumerate() {
            if h > 0 && (kv == 0 || h % kv != 0) {
                return Err(bad(format!(
                    "layer {layer}: {h} attention heads cannot share {kv} KV heads"
                )));
            }
        }
    }
    Ok(Summary {
        layers: layers as u32,
    })
}
