//! Thin safe wrappers over the ggml/gguf C API exposed by `llama-cpp-sys-2`.
//!
//! This is one of the two places where the trainer uses `unsafe` (the other is the CPU kernels).
//! Every call checks its preconditions in Rust first, because ggml aborts on violated asserts.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::path::Path;
use std::ptr::NonNull;

use llama_cpp_sys_2 as sys;

use crate::train::error::{Result, TrainError};

/// A ggml tensor element type, by its ggml enum value. Any value can be held (a file may name
/// a type this build does not know); every method that hands the value to ggml checks it first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GgmlType(u32);

impl GgmlType {
    pub const F32: GgmlType = GgmlType(sys::GGML_TYPE_F32);
    pub const F16: GgmlType = GgmlType(sys::GGML_TYPE_F16);
    pub const BF16: GgmlType = GgmlType(sys::GGML_TYPE_BF16);
    pub const Q4_0: GgmlType = GgmlType(sys::GGML_TYPE_Q4_0);
    pub const Q4_1: GgmlType = GgmlType(sys::GGML_TYPE_Q4_1);
    pub const Q5_0: GgmlType = GgmlType(sys::GGML_TYPE_Q5_0);
    pub const Q5_1: GgmlType = GgmlType(sys::GGML_TYPE_Q5_1);
    pub const Q8_0: GgmlType = GgmlType(sys::GGML_TYPE_Q8_0);
    pub const Q4_K: GgmlType = GgmlType(sys::GGML_TYPE_Q4_K);
    pub const Q5_K: GgmlType = GgmlType(sys::GGML_TYPE_Q5_K);
    pub const Q6_K: GgmlType = GgmlType(sys::GGML_TYPE_Q6_K);

    /// The types the trainer can dequantize (and the random-GGUF writer can produce).
    pub const SUPPORTED: [GgmlType; 11] = [
        Self::F32,
        Self::F16,
        Self::BF16,
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q8_0,
        Self::Q4_K,
        Self::Q5_K,
        Self::Q6_K,
    ];

    /// The type with ggml enum value `raw` (as stored in GGUF files), known or not.
    pub fn from_raw(raw: u32) -> GgmlType {
        GgmlType(raw)
    }

    /// The ggml enum value.
    pub fn raw(self) -> u32 {
        self.0
    }

    /// Whether [`GgmlType::SUPPORTED`] contains this type.
    pub fn is_supported(self) -> bool {
        Self::SUPPORTED.contains(&self)
    }

    /// ggml's name for the type ("q4_1", "f32", …), or "type#N" when unknown to ggml.
    pub fn name(self) -> String {
        if self.0 >= sys::GGML_TYPE_COUNT {
            return format!("type#{}", self.0);
        }
        // SAFETY: the type index is below GGML_TYPE_COUNT; ggml returns a static C string
        // (possibly NULL for removed types, handled below).
        let p = unsafe { sys::ggml_type_name(self.0) };
        if p.is_null() {
            return format!("type#{}", self.0);
        }
        // SAFETY: non-null pointer to a static NUL-terminated string owned by ggml.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// Parses a ggml type name ("f32", "q4_k", …) among the supported types.
    pub fn from_name(name: &str) -> Option<GgmlType> {
        Self::SUPPORTED
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// Elements per block (1 for float types); an error for a type outside
    /// [`GgmlType::SUPPORTED`].
    pub fn block_size(self) -> Result<usize> {
        if !self.is_supported() {
            return Err(TrainError::UnsupportedTensorType {
                tensor: String::new(),
                type_name: self.name(),
            });
        }
        // SAFETY: a supported type is a valid index into ggml's type table.
        Ok(unsafe { sys::ggml_blck_size(self.0) } as usize)
    }

    /// Bytes of one row of `n` elements, or an error if `n` is not a multiple of the block size.
    pub fn row_bytes(self, n: usize) -> Result<usize> {
        if !self.is_supported() {
            return Err(TrainError::UnsupportedTensorType {
                tensor: String::new(),
                type_name: self.name(),
            });
        }
        let bs = self.block_size()?;
        if n % bs != 0 {
            return Err(TrainError::shape(
                format!("row length for {}", self.name()),
                format!("multiple of {bs}"),
                n,
            ));
        }
        // SAFETY: supported type and n divisible by the block size (ggml asserts this).
        Ok(unsafe { sys::ggml_row_size(self.0, n as i64) })
    }
}

/// Dequantizes `n` elements of type `ty` from `src` into `dst` with ggml's own `to_float`.
///
/// `src` must hold exactly `ty.row_bytes(n)` bytes (any number of whole blocks) and `dst` `n` floats.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    let n = dst.len();
    let need = ty.row_bytes(n)?;
    if src.len() != need {
        return Err(TrainError::shape("quantized buffer bytes", need, src.len()));
    }
    if ty == GgmlType::F32 {
        for (d, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
            *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        return Ok(());
    }
    // SAFETY: supported type index; ggml returns a pointer to a static traits table.
    let traits = unsafe { sys::ggml_get_type_traits(ty.0) };
    // SAFETY: traits is non-null for valid types (static table); reading a Copy field.
    let to_float = unsafe { traits.as_ref() }
        .and_then(|t| t.to_float)
        .ok_or_else(|| TrainError::UnsupportedTensorType {
            tensor: String::new(),
            type_name: ty.name(),
        })?;
    // SAFETY: src holds exactly the bytes of n elements (checked above), dst has n floats,
    // and ggml's to_float reads only whole blocks within that range.
    unsafe { to_float(src.as_ptr().cast(), dst.as_mut_ptr(), n as i64) };
    Ok(())
}

/// IEEE half → f32 (ggml's conversion).
pub fn f16_to_f32(h: u16) -> f32 {
    // SAFETY: pure function on a value.
    unsafe { sys::ggml_fp16_to_fp32(h) }
}

/// f32 → IEEE half (round to nearest even, ggml's conversion).
#[cfg(test)]
pub fn f32_to_f16(x: f32) -> u16 {
    // SAFETY: pure function on a value.
    unsafe { sys::ggml_fp32_to_fp16(x) }
}

/// Quantizes `src` (rows of `n_per_row`) to `ty` with ggml's reference quantizer.
pub fn quantize(ty: GgmlType, src: &[f32], n_per_row: usize) -> Result<Vec<u8>> {
    if n_per_row == 0 || src.len() % n_per_row != 0 {
        return Err(TrainError::shape(
            "quantize input",
            format!("rows of {n_per_row}"),
            src.len(),
        ));
    }
    let rows = src.len() / n_per_row;
    let row_bytes = ty.row_bytes(n_per_row)?;
    if ty == GgmlType::F32 {
        return Ok(src.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
    let mut dst = vec![0u8; rows * row_bytes];
    // SAFETY: supported type; ggml_quantize_init only builds lookup tables (idempotent).
    unsafe { sys::ggml_quantize_init(ty.0) };
    // SAFETY: src holds rows*n_per_row floats, dst rows*row_bytes bytes; no imatrix is needed
    // for the supported types (none of them requires one).
    let written = unsafe {
        sys::ggml_quantize_chunk(
            ty.0,
            src.as_ptr(),
            dst.as_mut_ptr().cast(),
            0,
            rows as i64,
            n_per_row as i64,
            std::ptr::null(),
        )
    };
    if written != dst.len() {
        return Err(TrainError::shape("quantized bytes", dst.len(), written));
    }
    Ok(dst)
}

/// Description of one tensor in a GGUF file.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    pub ty: GgmlType,
    /// ggml dimensions: `ne[0]` is the row length (contiguous), then rows, …
    pub ne: Vec<usize>,
    /// Absolute byte offset of the data in the file.
    pub file_offset: u64,
    /// Bytes of data.
    pub size: usize,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.ne.iter().product()
    }
}

/// A GGUF value read from metadata (the scalar kinds the trainer needs).
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// An array (element values not decoded).
    Array(usize),
}

/// An open GGUF file's metadata (tensor data is not loaded: `no_alloc`).
///
/// Owns the `gguf_context`; `Send` but not `Sync`-shared by design (read-only after open).
pub struct GgufFile {
    ctx: NonNull<sys::gguf_context>,
    path: std::path::PathBuf,
}

// SAFETY: the gguf_context is exclusively owned and only read after construction.
unsafe impl Send for GgufFile {}

impl Drop for GgufFile {
    fn drop(&mut self) {
        // SAFETY: ctx came from gguf_init_from_file and is freed exactly once.
        unsafe { sys::gguf_free(self.ctx.as_ptr()) };
    }
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| TrainError::config(format!("string contains NUL: {s:?}")))
}

impl GgufFile {
    /// Opens and parses the metadata of a GGUF file.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(TrainError::MissingFile(path.to_path_buf()));
        }
        let cpath = cstring(&path.to_string_lossy())?;
        let params = sys::gguf_init_params {
            no_alloc: true,
            ctx: std::ptr::null_mut(),
        };
        // SAFETY: valid NUL-terminated path; no ggml context requested (ctx = NULL).
        let ctx = unsafe { sys::gguf_init_from_file(cpath.as_ptr(), params) };
        let ctx = NonNull::new(ctx).ok_or_else(|| {
            TrainError::corrupt(path, "gguf_init_from_file failed (not a GGUF file?)")
        })?;
        Ok(GgufFile {
            ctx,
            path: path.to_path_buf(),
        })
    }

    /// Path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn raw(&self) -> *mut sys::gguf_context {
        self.ctx.as_ptr()
    }

    fn key_id(&self, key: &str) -> Option<i64> {
        let k = cstring(key).ok()?;
        // SAFETY: valid context and C string.
        let id = unsafe { sys::gguf_find_key(self.ctx.as_ptr(), k.as_ptr()) };
        (id >= 0).then_some(id)
    }

    /// All metadata keys.
    pub fn keys(&self) -> Vec<String> {
        // SAFETY: valid context.
        let n = unsafe { sys::gguf_get_n_kv(self.ctx.as_ptr()) };
        (0..n)
            .map(|i| {
                // SAFETY: 0 <= i < n_kv; returns a string owned by the context.
                let p = unsafe { sys::gguf_get_key(self.ctx.as_ptr(), i) };
                // SAFETY: non-null, NUL-terminated, lives as long as ctx.
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
            })
            .collect()
    }

    /// Reads a metadata value, or `None` when the key is absent.
    pub fn get(&self, key: &str) -> Option<GgufValue> {
        let id = self.key_id(key)?;
        let c = self.ctx.as_ptr();
        // SAFETY: id is a valid key index; each getter is called only for its own type
        // (ggml asserts the type otherwise).
        unsafe {
            Some(match sys::gguf_get_kv_type(c, id) {
                sys::GGUF_TYPE_UINT8 => GgufValue::Int(sys::gguf_get_val_u8(c, id) as i64),
                sys::GGUF_TYPE_INT8 => GgufValue::Int(sys::gguf_get_val_i8(c, id) as i64),
                sys::GGUF_TYPE_UINT16 => GgufValue::Int(sys::gguf_get_val_u16(c, id) as i64),
                sys::GGUF_TYPE_INT16 => GgufValue::Int(sys::gguf_get_val_i16(c, id) as i64),
                sys::GGUF_TYPE_UINT32 => GgufValue::Int(sys::gguf_get_val_u32(c, id) as i64),
                sys::GGUF_TYPE_INT32 => GgufValue::Int(sys::gguf_get_val_i32(c, id) as i64),
                sys::GGUF_TYPE_UINT64 => GgufValue::Int(sys::gguf_get_val_u64(c, id) as i64),
                sys::GGUF_TYPE_INT64 => GgufValue::Int(sys::gguf_get_val_i64(c, id)),
                sys::GGUF_TYPE_FLOAT32 => GgufValue::Float(sys::gguf_get_val_f32(c, id) as f64),
                sys::GGUF_TYPE_FLOAT64 => GgufValue::Float(sys::gguf_get_val_f64(c, id)),
                sys::GGUF_TYPE_BOOL => GgufValue::Bool(sys::gguf_get_val_bool(c, id)),
                sys::GGUF_TYPE_STRING => {
                    let p = sys::gguf_get_val_str(c, id);
                    GgufValue::Str(CStr::from_ptr(p).to_string_lossy().into_owned())
                }
                sys::GGUF_TYPE_ARRAY => GgufValue::Array(sys::gguf_get_arr_n(c, id)),
                _ => return None,
            })
        }
    }

    /// An integer value; `Ok(None)` if absent, error if present with another type.
    pub fn get_int(&self, key: &str) -> Result<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(GgufValue::Int(v)) => Ok(Some(v)),
            Some(other) => Err(TrainError::corrupt(
                &self.path,
                format!("{key}: expected integer, got {other:?}"),
            )),
        }
    }

    /// A float value (integers accepted); `Ok(None)` if absent.
    pub fn get_float(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(GgufValue::Float(v)) => Ok(Some(v)),
            Some(GgufValue::Int(v)) => Ok(Some(v as f64)),
            Some(other) => Err(TrainError::corrupt(
                &self.path,
                format!("{key}: expected float, got {other:?}"),
            )),
        }
    }

    /// A string value; `Ok(None)` if absent.
    pub fn get_str(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(GgufValue::Str(v)) => Ok(Some(v)),
            Some(other) => Err(TrainError::corrupt(
                &self.path,
                format!("{key}: expected string, got {other:?}"),
            )),
        }
    }

    /// Every tensor's description, in file order. Validates sizes against the file length.
    pub fn tensors(&self) -> Result<Vec<TensorInfo>> {
        let c = self.ctx.as_ptr();
        let file_len = std::fs::metadata(&self.path)
            .map_err(|e| TrainError::io(&self.path, e))?
            .len();
        // SAFETY: valid context.
        let (n, data_off) = unsafe { (sys::gguf_get_n_tensors(c), sys::gguf_get_data_offset(c)) };
        let mut out = Vec::with_capacity(n.max(0) as usize);
        for i in 0..n {
            // SAFETY: 0 <= i < n_tensors; the name is owned by the context; ne points to
            // GGML_MAX_DIMS (4) int64 values inside the context.
            let (name, ty, ne, off, size) = unsafe {
                let name = CStr::from_ptr(sys::gguf_get_tensor_name(c, i))
                    .to_string_lossy()
                    .into_owned();
                let ne_p = sys::gguf_get_tensor_ne(c, i);
                let ne = std::slice::from_raw_parts(ne_p, 4).to_vec();
                (
                    name,
                    sys::gguf_get_tensor_type(c, i),
                    ne,
                    sys::gguf_get_tensor_offset(c, i),
                    sys::gguf_get_tensor_size(c, i),
                )
            };
            let mut ne: Vec<usize> = ne.iter().map(|&v| v.max(0) as usize).collect();
            while ne.len() > 1 && ne[ne.len() - 1] == 1 {
                ne.pop();
            }
            let file_offset = (data_off + off) as u64;
            if file_offset + size as u64 > file_len {
                return Err(TrainError::corrupt(
                    &self.path,
                    format!("tensor {name} extends past end of file"),
                ));
            }
            out.push(TensorInfo {
                name,
                ty: GgmlType::from_raw(ty),
                ne,
                file_offset,
                size,
            });
        }
        Ok(out)
    }
}

/// Builds a GGUF file: metadata through gguf's own writer, tensor data streamed by us.
///
/// Not thread-safe; owns its gguf and ggml contexts.
pub struct GgufBuilder {
    ctx: NonNull<sys::gguf_context>,
    ggml: NonNull<sys::ggml_context>,
    names: HashSet<String>,
    tensors: Vec<(String, GgmlType, Vec<usize>)>,
    max_tensors: usize,
}

impl Drop for GgufBuilder {
    fn drop(&mut self) {
        // SAFETY: both contexts were created in `new` and are freed exactly once.
        unsafe {
            sys::gguf_free(self.ctx.as_ptr());
            sys::ggml_free(self.ggml.as_ptr());
        }
    }
}

impl GgufBuilder {
    /// A builder that can hold up to `max_tensors` tensors.
    pub fn new(max_tensors: usize) -> Result<Self> {
        // SAFETY: plain constructor.
        let ctx = NonNull::new(unsafe { sys::gguf_init_empty() })
            .ok_or_else(|| TrainError::Llama("gguf_init_empty failed".into()))?;
        // SAFETY: returns the per-tensor metadata overhead, no preconditions.
        let overhead = unsafe { sys::ggml_tensor_overhead() };
        let params = sys::ggml_init_params {
            mem_size: overhead * (max_tensors + 1),
            mem_buffer: std::ptr::null_mut(),
            no_alloc: true,
        };
        // SAFETY: no_alloc context sized for the tensor headers only.
        let ggml = unsafe { sys::ggml_init(params) };
        let Some(ggml) = NonNull::new(ggml) else {
            // SAFETY: ctx is valid and not yet owned by a builder.
            unsafe { sys::gguf_free(ctx.as_ptr()) };
            return Err(TrainError::Llama("ggml_init failed".into()));
        };
        Ok(GgufBuilder {
            ctx,
            ggml,
            names: HashSet::new(),
            tensors: Vec::new(),
            max_tensors,
        })
    }

    /// Copies every metadata key-value pair from `src`.
    pub fn copy_kv_from(&mut self, src: &GgufFile) {
        // SAFETY: both contexts are valid; gguf_set_kv deep-copies.
        unsafe { sys::gguf_set_kv(self.ctx.as_ptr(), src.raw()) };
    }

    pub fn set_str(&mut self, key: &str, val: &str) -> Result<()> {
        let (k, v) = (cstring(key)?, cstring(val)?);
        // SAFETY: valid context and C strings (copied by gguf).
        unsafe { sys::gguf_set_val_str(self.ctx.as_ptr(), k.as_ptr(), v.as_ptr()) };
        Ok(())
    }

    pub fn set_u32(&mut self, key: &str, val: u32) -> Result<()> {
        let k = cstring(key)?;
        // SAFETY: valid context and key.
        unsafe { sys::gguf_set_val_u32(self.ctx.as_ptr(), k.as_ptr(), val) };
        Ok(())
    }

    pub fn set_f32(&mut self, key: &str, val: f32) -> Result<()> {
        let k = cstring(key)?;
        // SAFETY: valid context and key.
        unsafe { sys::gguf_set_val_f32(self.ctx.as_ptr(), k.as_ptr(), val) };
        Ok(())
    }

    /// Declares a tensor (ggml dims, `ne[0]` contiguous). Data is supplied to [`GgufBuilder::write`].
    pub fn add_tensor(&mut self, name: &str, ty: GgmlType, ne: &[usize]) -> Result<()> {
        if name.len() >= 64 {
            return Err(TrainError::config(format!(
                "tensor name too long (max 63 bytes): {name}"
            )));
        }
        if ne.is_empty() || ne.len() > 4 || ne.contains(&0) {
            return Err(TrainError::config(format!(
                "bad tensor dims for {name}: {ne:?}"
            )));
        }
        if !self.names.insert(name.to_string()) {
            return Err(TrainError::config(format!("duplicate tensor name {name}")));
        }
        if self.tensors.len() >= self.max_tensors {
            return Err(TrainError::config(
                "too many tensors for GgufBuilder capacity",
            ));
        }
        ty.row_bytes(ne[0])?;
        let cname = cstring(name)?;
        let ne64: Vec<i64> = ne.iter().map(|&v| v as i64).collect();
        // SAFETY: the ggml context has room for max_tensors headers (checked above), the type is
        // supported and ne[0] is a multiple of its block size; gguf_add_tensor copies the header
        // and the name is unique (checked above), so ggml's asserts cannot fire.
        unsafe {
            let t =
                sys::ggml_new_tensor(self.ggml.as_ptr(), ty.0, ne64.len() as i32, ne64.as_ptr());
            if t.is_null() {
                return Err(TrainError::Llama("ggml_new_tensor failed".into()));
            }
            sys::ggml_set_name(t, cname.as_ptr());
            sys::gguf_add_tensor(self.ctx.as_ptr(), t);
        }
        self.tensors.push((name.to_string(), ty, ne.to_vec()));
        Ok(())
    }

    /// Writes the file: metadata, then for each declared tensor (in order) the bytes produced by
    /// `data(index, name, out)`, which must fill `out` with exactly the tensor's byte size.
    pub fn write<F>(&self, path: &Path, mut data: F) -> Result<()>
    where
        F: FnMut(usize, &str, &mut Vec<u8>) -> Result<()>,
    {
        use std::io::{Seek, SeekFrom, Write};
        let cpath = cstring(&path.to_string_lossy())?;
        // SAFETY: valid context and path; only metadata (with the alignment padding) is written.
        let ok = unsafe { sys::gguf_write_to_file(self.ctx.as_ptr(), cpath.as_ptr(), true) };
        if !ok {
            return Err(TrainError::io(
                path,
                std::io::Error::other("gguf_write_to_file failed"),
            ));
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| TrainError::io(path, e))?;
        let data_start = f
            .seek(SeekFrom::End(0))
            .map_err(|e| TrainError::io(path, e))?;
        // SAFETY: valid context; returns the metadata size including the alignment padding.
        let meta = unsafe { sys::gguf_get_meta_size(self.ctx.as_ptr()) } as u64;
        if data_start != meta {
            return Err(TrainError::io(
                path,
                std::io::Error::other("GGUF metadata size mismatch"),
            ));
        }
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let mut pos = 0u64;
        let mut buf = Vec::new();
        for (i, (name, ty, ne)) in self.tensors.iter().enumerate() {
            // SAFETY: i < n_tensors of this context.
            let off = unsafe { sys::gguf_get_tensor_offset(self.ctx.as_ptr(), i as i64) } as u64;
            let need = ty.row_bytes(ne[0])? * ne[1..].iter().product::<usize>();
            buf.clear();
            data(i, name, &mut buf)?;
            if buf.len() != need {
                return Err(TrainError::shape(
                    format!("data bytes of tensor {name}"),
                    need,
                    buf.len(),
                ));
            }
            if off < pos {
                return Err(TrainError::Llama("gguf tensor offsets out of order".into()));
            }
            w.write_all(&vec![0u8; (off - pos) as usize])
                .map_err(|e| TrainError::io(path, e))?;
            w.write_all(&buf).map_err(|e| TrainError::io(path, e))?;
            pos = off + buf.len() as u64;
        }
        // SAFETY: valid context.
        let align = unsafe { sys::gguf_get_alignment(self.ctx.as_ptr()) } as u64;
        let pad = (align - pos % align) % align;
        w.write_all(&vec![0u8; pad as usize])
            .map_err(|e| TrainError::io(path, e))?;
        let f = w
            .into_inner()
            .map_err(|e| TrainError::io(path, e.into_error()))?;
        f.sync_all().map_err(|e| TrainError::io(path, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_are_errors_not_table_reads() {
        for raw in [4, 5, 9999, u32::MAX] {
            let t = GgmlType::from_raw(raw);
            assert!(!t.is_supported());
            assert!(t.block_size().is_err(), "{raw}");
            assert!(t.row_bytes(32).is_err(), "{raw}");
            assert!(dequantize(t, &[0u8; 18], &mut [0f32; 32]).is_err(), "{raw}");
            assert!(quantize(t, &[0f32; 32], 32).is_err(), "{raw}");
        }
        assert_eq!(GgmlType::from_raw(9999).name(), "type#9999");
        assert_eq!(GgmlType::Q4_1.block_size().unwrap(), 32);
        assert_eq!(GgmlType::F32.block_size().unwrap(), 1);
    }
}
