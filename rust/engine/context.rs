//! A llama.cpp context: KV cache, batched decoding, logits, adapters.

use super::batch::Batch;
use super::lora::LoraAdapter;
use super::model::Model;
use crate::error::{Error, ErrorCode, Result};
use llama_cpp_sys_2 as sys;
use serde::{Deserialize, Serialize};
use std::os::raw::c_void;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Arc;

/// How to create a context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextParams {
    /// KV cache size in tokens, shared by all sequences (unified cache). 0 = the model's training
    /// context length.
    pub n_ctx: u32,
    /// Largest batch (tokens) one decode call may submit.
    pub n_batch: u32,
    /// Most sequences decoded together (samples of a group).
    pub n_seq_max: u32,
    /// Threads for decoding; 0 = all available cores.
    pub n_threads: i32,
    /// Flash attention: -1 = let llama.cpp decide (auto), 0 = off, 1 = on.
    pub flash_attn: i32,
    /// Keep the KV cache in F32 instead of F16 (exact reference computations).
    pub kv_cache_f32: bool,
    /// One KV buffer shared by all sequences (prompt cells shared, each sequence attends over
    /// the whole buffer) instead of a stream per sequence of `n_ctx / n_seq_max` cells (the
    /// prompt is copied into each stream; attention is cheaper). Off by default: faster for
    /// groups of samples.
    pub kv_unified: bool,
    /// Keep the KV cache (and attention) on the GPU that holds the model's layers; off = in
    /// host memory. No effect for a model on the CPU.
    pub offload_kqv: bool,
}

impl Default for ContextParams {
    fn default() -> Self {
        Self {
            n_ctx: 4096,
            n_batch: 2048,
            n_seq_max: 16,
            n_threads: 0,
            flash_attn: -1,
            kv_cache_f32: false,
            kv_unified: false,
            offload_kqv: true,
        }
    }
}

impl ContextParams {
    /// Checks ranges before llama.cpp sees them.
    pub fn validate(&self) -> Result<()> {
        let max_seq = {
            // SAFETY: pure query.
            unsafe { sys::llama_max_parallel_sequences() }
        };
        if self.n_seq_max == 0 || self.n_seq_max as usize > max_seq {
            return Err(Error::invalid(format!(
                "n_seq_max must be in 1..={max_seq}, got {}",
                self.n_seq_max
            )));
        }
        if self.n_batch == 0 {
            return Err(Error::invalid("n_batch must be at least 1"));
        }
        if self.n_threads < 0 || self.n_threads > 1024 {
            return Err(Error::invalid(format!(
                "n_threads must be in 0..=1024, got {}",
                self.n_threads
            )));
        }
        if !(-1..=1).contains(&self.flash_attn) {
            return Err(Error::invalid(format!(
                "flash_attn must be -1 (auto), 0 (off) or 1 (on), got {}",
                self.flash_attn
            )));
        }
        if self.n_ctx > 0 && self.n_ctx < 16 {
            return Err(Error::invalid(format!(
                "n_ctx must be 0 (model default) or at least 16, got {}",
                self.n_ctx
            )));
        }
        Ok(())
    }

    fn threads(&self) -> i32 {
        if self.n_threads > 0 {
            self.n_threads
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get() as i32)
                .unwrap_or(1)
        }
    }
}

/// A decoding context on one model.
///
/// Thread-safety: `Send` but not `Sync`: one thread at a time may decode. The cancel flag
/// installed with [`Context::set_abort_flag`] may be set from any thread.
pub struct Context {
    ptr: NonNull<sys::llama_context>,
    model: Arc<Model>,
    n_ctx: u32,
    n_ctx_seq: u32,
    n_batch: u32,
    n_seq_max: u32,
    n_vocab: usize,
    /// Points at the flag llama.cpp's abort callback reads (null = none); boxed so its address
    /// stays fixed for the callback.
    abort_flag: Box<AtomicPtr<AtomicBool>>,
    /// Keeps the flag installed in `abort_flag` alive.
    abort_owner: Option<Arc<AtomicBool>>,
    /// Adapters currently applied, kept alive while the context references them.
    adapters: Vec<(Arc<LoraAdapter>, f32)>,
}

// SAFETY: a llama_context may be moved between threads; it is used by one thread at a time
// because every mutating method takes `&mut self`.
unsafe impl Send for Context {}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: ptr came from llama_init_from_model and is freed exactly once; the model is
        // still alive (self.model drops after this body).
        unsafe { sys::llama_free(self.ptr.as_ptr()) }
    }
}

unsafe extern "C" fn abort_requested(data: *mut c_void) -> bool {
    if data.is_null() {
        return false;
    }
    // SAFETY: data is the address of the context's boxed AtomicPtr, alive as long as the context.
    let slot = unsafe { &*(data as *const AtomicPtr<AtomicBool>) };
    let flag = slot.load(Ordering::Acquire);
    // SAFETY: a non-null pointer is kept alive by `abort_owner` while installed.
    !flag.is_null() && unsafe { (*flag).load(Ordering::Relaxed) }
}

impl Context {
    /// Creates a context.
    ///
    /// Errors: invalid parameters; [`ErrorCode::OutOfMemory`] when the KV cache would not fit
    /// the memory free where it lives (the message names both); llama.cpp failing to create it.
    pub fn new(model: Arc<Model>, params: &ContextParams) -> Result<Context> {
        params.validate()?;
        let cells = if params.n_ctx > 0 {
            params.n_ctx as f64
        } else {
            model.n_ctx_train() as f64
        };
        let kv_bytes = cells * model.kv_bytes_per_token(if params.kv_cache_f32 { 4 } else { 2 });
        if let Some(dev) = model.kv_device(params.offload_kqv) {
            super::placement::check_kv_fits(
                kv_bytes,
                &dev,
                &format!("the KV cache of {} cells", cells as u64),
            )?;
        }
        let threads = params.threads();
        let abort_flag = Box::new(AtomicPtr::new(std::ptr::null_mut()));
        // SAFETY: default params are plain data; the model pointer is valid; the abort data
        // pointer is the boxed AtomicPtr, which outlives the context.
        let ptr = unsafe {
            let mut cp = sys::llama_context_default_params();
            cp.n_ctx = params.n_ctx;
            cp.n_batch = params.n_batch;
            cp.n_ubatch = params.n_batch.min(512);
            cp.n_seq_max = params.n_seq_max;
            cp.n_threads = threads;
            cp.n_threads_batch = threads;
            cp.kv_unified = params.kv_unified;
            cp.offload_kqv = params.offload_kqv;
            cp.no_perf = true;
            cp.flash_attn_type = match params.flash_attn {
                1 => sys::LLAMA_FLASH_ATTN_TYPE_ENABLED,
                0 => sys::LLAMA_FLASH_ATTN_TYPE_DISABLED,
                _ => sys::LLAMA_FLASH_ATTN_TYPE_AUTO,
            };
            if params.kv_cache_f32 {
                cp.type_k = sys::GGML_TYPE_F32;
                cp.type_v = sys::GGML_TYPE_F32;
            }
            cp.abort_callback = Some(abort_requested);
            cp.abort_callback_data = (&*abort_flag as *const AtomicPtr<AtomicBool>) as *mut c_void;
            sys::llama_init_from_model(model.as_ptr(), cp)
        };
        let ptr = NonNull::new(ptr).ok_or_else(|| {
            Error::new(
                ErrorCode::ModelLoad,
                format!(
                    "llama.cpp could not create a context (n_ctx {}, n_seq_max {}); out of memory?",
                    params.n_ctx, params.n_seq_max
                ),
            )
        })?;
        // SAFETY: valid context pointer.
        let (n_ctx, n_ctx_seq, n_batch, n_seq_max) = unsafe {
            (
                sys::llama_n_ctx(ptr.as_ptr()),
                sys::llama_n_ctx_seq(ptr.as_ptr()),
                sys::llama_n_batch(ptr.as_ptr()),
                sys::llama_n_seq_max(ptr.as_ptr()),
            )
        };
        let n_vocab = model.n_vocab();
        Ok(Context {
            ptr,
            model,
            n_ctx,
            n_ctx_seq,
            n_batch,
            n_seq_max,
            n_vocab,
            abort_flag,
            abort_owner: None,
            adapters: Vec::new(),
        })
    }

    /// The model this context decodes with.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// KV cache size in tokens (all sequences together).
    pub fn n_ctx(&self) -> u32 {
        self.n_ctx
    }

    /// KV cells one sequence may use: `n_ctx` with a unified cache, else `n_ctx / n_seq_max`.
    pub fn n_ctx_seq(&self) -> u32 {
        self.n_ctx_seq
    }

    /// Largest number of tokens one [`Context::decode`] call may carry.
    pub fn n_batch(&self) -> u32 {
        self.n_batch
    }

    /// Most distinct sequences.
    pub fn n_seq_max(&self) -> u32 {
        self.n_seq_max
    }

    /// Installs (or with `None` removes) a flag that aborts a running decode when set.
    pub fn set_abort_flag(&mut self, flag: Option<Arc<AtomicBool>>) {
        let p = flag
            .as_ref()
            .map(|f| Arc::as_ptr(f) as *mut AtomicBool)
            .unwrap_or(std::ptr::null_mut());
        self.abort_flag.store(p, Ordering::Release);
        self.abort_owner = flag;
    }

    /// Evaluates a batch. Errors: [`ErrorCode::ContextTooSmall`] when the KV cache is full,
    /// [`ErrorCode::Cancelled`] when the abort flag was set, [`ErrorCode::Decode`] otherwise.
    pub fn decode(&mut self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        if batch.len() > self.n_batch as usize {
            return Err(Error::invalid(format!(
                "batch of {} tokens exceeds n_batch {}",
                batch.len(),
                self.n_batch
            )));
        }
        let n_vocab = self.n_vocab as i32;
        for (i, (token, pos, seq)) in batch.entries().enumerate() {
            if token < 0 || token >= n_vocab {
                return Err(Error::new(
                    ErrorCode::OutOfRange,
                    format!(
                        "batch entry {i}: token {token} is outside the vocabulary (0..{n_vocab})"
                    ),
                ));
            }
            if pos < 0 {
                return Err(Error::invalid(format!(
                    "batch entry {i}: negative position {pos}"
                )));
            }
            self.check_seq(seq, &format!("batch entry {i}:"))?;
        }
        // SAFETY: the batch's arrays are valid for batch.len() entries, every token is in the
        // vocabulary and every sequence id below n_seq_max (checked above); the context is live.
        let rc = unsafe { sys::llama_decode(self.ptr.as_ptr(), batch.raw()) };
        match rc {
            0 => Ok(()),
            1 => Err(Error::new(
                ErrorCode::ContextTooSmall,
                format!(
                    "KV cache full (n_ctx {}): no slot for the batch",
                    self.n_ctx
                ),
            )),
            2 => Err(Error::new(ErrorCode::Cancelled, "decoding was cancelled")),
            rc => Err(Error::new(
                ErrorCode::Decode,
                format!("llama_decode failed with code {rc}"),
            )),
        }
    }

    /// Logits of the batch entry `i` (which must have requested logits), length `n_vocab`.
    pub fn logits(&self, i: usize) -> Result<&[f32]> {
        // SAFETY: llama.cpp bounds-checks i and returns NULL for an entry without logits.
        let p = unsafe { sys::llama_get_logits_ith(self.ptr.as_ptr(), i as i32) };
        if p.is_null() {
            return Err(Error::new(
                ErrorCode::Internal,
                format!("no logits for batch entry {i}"),
            ));
        }
        // SAFETY: llama.cpp guarantees n_vocab floats at p until the next decode; the borrow of
        // self prevents a decode while the slice lives.
        Ok(unsafe { std::slice::from_raw_parts(p, self.n_vocab) })
    }

    /// Switches the output of hidden states on or off: while on, every batch entry that asks
    /// for logits also gets its last hidden state ([`Context::embeddings`]).
    pub fn set_embeddings(&mut self, on: bool) {
        // SAFETY: valid context pointer; takes effect from the next decode.
        unsafe { sys::llama_set_embeddings(self.ptr.as_ptr(), on) }
    }

    /// The last hidden state of batch entry `i` (length `n_embd`), after a decode with
    /// embeddings on ([`Context::set_embeddings`]) in which the entry asked for logits.
    pub fn embeddings(&self, i: usize) -> Result<&[f32]> {
        // SAFETY: llama.cpp bounds-checks i and returns NULL for an entry without output.
        let p = unsafe { sys::llama_get_embeddings_ith(self.ptr.as_ptr(), i as i32) };
        if p.is_null() {
            return Err(Error::new(
                ErrorCode::Internal,
                format!("no embeddings for batch entry {i} (are embeddings on?)"),
            ));
        }
        // SAFETY: llama.cpp guarantees n_embd floats at p until the next decode; the borrow of
        // self prevents a decode while the slice lives.
        Ok(unsafe { std::slice::from_raw_parts(p, self.model.n_embd()) })
    }

    fn memory(&self) -> sys::llama_memory_t {
        // SAFETY: valid context pointer.
        unsafe { sys::llama_get_memory(self.ptr.as_ptr()) }
    }

    /// Drops every cached token of every sequence.
    pub fn clear_kv(&mut self) {
        // SAFETY: valid memory handle.
        unsafe { sys::llama_memory_clear(self.memory(), true) }
    }

    /// An error unless `seq` is a sequence id of this context (`0..n_seq_max`).
    fn check_seq(&self, seq: i32, what: &str) -> Result<()> {
        if seq < 0 || seq as u32 >= self.n_seq_max {
            return Err(Error::new(
                ErrorCode::OutOfRange,
                format!(
                    "{what} sequence id {seq} is outside 0..{} (n_seq_max)",
                    self.n_seq_max
                ),
            ));
        }
        Ok(())
    }

    /// Removes all cached tokens of sequence `seq`. Errors: `seq` outside `0..n_seq_max`.
    pub fn remove_sequence(&mut self, seq: i32) -> Result<()> {
        self.check_seq(seq, "removed")?;
        // SAFETY: valid memory handle and a sequence id below n_seq_max; removing a whole
        // sequence never fails.
        unsafe {
            sys::llama_memory_seq_rm(self.memory(), seq, -1, -1);
        }
        Ok(())
    }

    /// Gives sequence `dst` all cached tokens of `src` (shared cells in a unified cache, a copy
    /// into `dst`'s stream otherwise). Errors: an id outside `0..n_seq_max`, or `src == dst`.
    pub fn copy_sequence(&mut self, src: i32, dst: i32) -> Result<()> {
        self.check_seq(src, "source")?;
        self.check_seq(dst, "destination")?;
        if src == dst {
            return Err(Error::invalid(format!(
                "cannot copy sequence {src} onto itself"
            )));
        }
        // SAFETY: valid memory handle; both ids are below n_seq_max and distinct.
        unsafe { sys::llama_memory_seq_cp(self.memory(), src, dst, -1, -1) }
        Ok(())
    }

    /// Applies LoRA adapters (replacing any applied before) with the given scales.
    /// An empty slice switches adapters off. The base model is not reloaded.
    pub fn set_adapters(&mut self, adapters: &[(Arc<LoraAdapter>, f32)]) -> Result<()> {
        for (a, _) in adapters {
            if !Arc::ptr_eq(a.model(), &self.model) {
                return Err(Error::new(
                    ErrorCode::AdapterLoad,
                    "adapter was loaded for a different model",
                ));
            }
        }
        let mut ptrs: Vec<*mut sys::llama_adapter_lora> =
            adapters.iter().map(|(a, _)| a.as_ptr()).collect();
        let mut scales: Vec<f32> = adapters.iter().map(|(_, s)| *s).collect();
        // SAFETY: arrays hold adapters.len() valid adapter pointers for this model; llama.cpp
        // copies what it needs.
        let rc = unsafe {
            sys::llama_set_adapters_lora(
                self.ptr.as_ptr(),
                ptrs.as_mut_ptr(),
                ptrs.len(),
                scales.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(Error::new(
                ErrorCode::AdapterLoad,
                format!("llama.cpp refused the adapters (code {rc})"),
            ));
        }
        self.adapters = adapters.to_vec();
        Ok(())
    }

    /// Adapters currently applied.
    pub fn adapters(&self) -> &[(Arc<LoraAdapter>, f32)] {
        &self.adapters
    }
}
