//! A loaded GGUF model: weights, vocabulary, tokenizer and chat template.

use super::backend::init_backend;
use super::placement::{place_model, SplitMode};
use crate::error::{Error, ErrorCode, Result};
use llama_cpp_sys_2 as sys;
use serde::{Deserialize, Serialize};
use std::ffi::{CStr, CString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

/// A vocabulary token id.
pub type Token = i32;

/// How to load a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelParams {
    /// Layers to offload to a GPU: 0 = CPU only (no GPU is touched), -1 = all, N = the last N.
    pub n_gpu_layers: i32,
    /// The GPU that holds the model (split mode `none`) or its small tensors: an index into
    /// [`super::gpus`].
    pub main_gpu: i32,
    /// How the model is spread over several GPUs.
    pub split_mode: SplitMode,
    /// When GPU layers are asked for but no GPU can take them (none loaded, bad index, too
    /// little memory), load on the CPU instead of failing; [`Model::fallback`] says why.
    pub cpu_fallback: bool,
    /// Map the file instead of reading it (faster start, shared pages).
    pub use_mmap: bool,
}

impl Default for ModelParams {
    fn default() -> Self {
        Self {
            n_gpu_layers: 0,
            main_gpu: 0,
            split_mode: SplitMode::None,
            cpu_fallback: false,
            use_mmap: true,
        }
    }
}

/// One chat message for [`Model::apply_chat_template`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// "system", "user" or "assistant".
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// Builds a message.
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

/// A loaded model. Immutable after loading.
///
/// Thread-safety: `Model` is `Send + Sync`; tokenization, detokenization and chat templating may
/// run concurrently from several threads (llama.cpp documents these as thread-safe). Contexts
/// keep the model alive through an `Arc<Model>`.
pub struct Model {
    ptr: NonNull<sys::llama_model>,
    path: PathBuf,
    /// Layers on a GPU (0 = CPU only) and which GPU.
    gpu_layers: i32,
    main_gpu: i32,
    fallback: Option<String>,
}

// SAFETY: a llama_model is read-only after loading; llama.cpp allows several contexts on one model
// from different threads, and the vocabulary functions used here are documented as thread-safe.
unsafe impl Send for Model {}
// SAFETY: see above; no method takes `&self` and mutates the model.
unsafe impl Sync for Model {}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: ptr came from llama_model_load_from_file and is freed exactly once, here.
        unsafe { sys::llama_model_free(self.ptr.as_ptr()) }
    }
}

/// Checks that `path` names a readable file that starts with the GGUF magic, so that a missing or
/// foreign file gets a precise message before llama.cpp sees it.
fn check_gguf_file(path: &Path) -> Result<()> {
    let mut file = std::fs::File::open(path).map_err(|e| {
        Error::new(
            ErrorCode::ModelLoad,
            format!("cannot open model file '{}': {e}", path.display()),
        )
    })?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic).map_err(|_| {
        Error::new(
            ErrorCode::ModelLoad,
            format!("'{}' is too short to be a GGUF file", path.display()),
        )
    })?;
    if &magic != b"GGUF" {
        return Err(Error::new(
            ErrorCode::ModelLoad,
            format!("'{}' is not a GGUF file (bad magic)", path.display()),
        ));
    }
    Ok(())
}

/// Converts a Rust path to a C string, rejecting interior NULs.
pub(crate) fn path_to_cstring(path: &Path) -> Result<CString> {
    let s = path
        .to_str()
        .ok_or_else(|| Error::new(ErrorCode::InvalidUtf8, "path is not valid UTF-8"))?;
    CString::new(s).map_err(|_| Error::invalid("path contains a NUL byte"))
}

impl Model {
    /// Loads a GGUF model.
    ///
    /// Errors: [`ErrorCode::ModelLoad`] when the file is missing, not GGUF, truncated or corrupt,
    /// or of an architecture llama.cpp does not know.
    pub fn load(path: impl AsRef<Path>, params: &ModelParams) -> Result<Model> {
        let path = path.as_ref();
        init_backend();
        if !super::backend::has_cpu_backend() {
            return Err(Error::new(
                ErrorCode::ModelLoad,
                super::modules::missing_modules_message(),
            ));
        }
        check_gguf_file(path)?;
        let c_path = path_to_cstring(path)?;
        let summary = super::preflight::check_model_file(path, &c_path)?;
        let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let placement = place_model(
            params.n_gpu_layers,
            params.main_gpu,
            params.split_mode,
            params.cpu_fallback,
            file_bytes,
            summary.layers,
        )?;
        // A CPU-only model lists no device at all, so that llama.cpp offloads nothing.
        let mut no_devices: [sys::ggml_backend_dev_t; 1] = [std::ptr::null_mut()];
        // SAFETY: default params are plain data; the path pointer and the device list outlive
        // the call.
        let ptr = unsafe {
            let mut mp = sys::llama_model_default_params();
            mp.n_gpu_layers = placement.n_gpu_layers;
            mp.main_gpu = params.main_gpu.max(0);
            mp.split_mode = match params.split_mode {
                SplitMode::None => sys::LLAMA_SPLIT_MODE_NONE,
                SplitMode::Layer => sys::LLAMA_SPLIT_MODE_LAYER,
                SplitMode::Row => sys::LLAMA_SPLIT_MODE_ROW,
            };
            if placement.n_gpu_layers == 0 {
                mp.devices = no_devices.as_mut_ptr();
            }
            mp.load_mode = if params.use_mmap {
                sys::LLAMA_LOAD_MODE_MMAP
            } else {
                sys::LLAMA_LOAD_MODE_NONE
            };
            sys::llama_model_load_from_file(c_path.as_ptr(), mp)
        };
        let ptr = NonNull::new(ptr).ok_or_else(|| {
            Error::new(
                ErrorCode::ModelLoad,
                format!(
                    "llama.cpp could not load '{}' (corrupt or truncated GGUF, or unsupported architecture; set FMR_LLAMA_LOG=1 for details)",
                    path.display()
                ),
            )
        })?;
        Ok(Model {
            ptr,
            path: path.to_path_buf(),
            gpu_layers: placement.n_gpu_layers,
            main_gpu: params.main_gpu,
            fallback: placement.fallback,
        })
    }

    /// Bytes of KV cache per token and layer-stack: K and V of every layer, at `bytes_per_value`
    /// (2 for f16). An estimate: sliding-window layers are counted in full.
    pub(crate) fn kv_bytes_per_token(&self, bytes_per_value: usize) -> f64 {
        // SAFETY: pure queries on a loaded model.
        let (embd, head, head_kv) = unsafe {
            (
                sys::llama_model_n_embd(self.ptr.as_ptr()).max(0) as f64,
                sys::llama_model_n_head(self.ptr.as_ptr()).max(1) as f64,
                sys::llama_model_n_head_kv(self.ptr.as_ptr()).max(0) as f64,
            )
        };
        let kv_dim = embd / head * head_kv;
        2.0 * kv_dim * self.n_layer() as f64 * bytes_per_value as f64
    }

    /// The file this model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Layers offloaded to a GPU (0 = the model runs on the CPU, -1 = all).
    pub fn gpu_layers(&self) -> i32 {
        self.gpu_layers
    }

    /// When GPU layers were asked for with `cpu_fallback` and the model went to the CPU: what
    /// it fell back from and why. `None` otherwise.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The device that holds the KV cache of a context that offloads it (`offload_kqv`): the
    /// main GPU when layers are on a GPU, else the CPU.
    pub(crate) fn kv_device(&self, offload_kqv: bool) -> Option<super::DeviceInfo> {
        let on_gpu = self.gpu_layers != 0 && offload_kqv;
        let all = super::devices();
        if on_gpu {
            if let Some(g) = super::gpus().into_iter().nth(self.main_gpu.max(0) as usize) {
                return Some(g);
            }
        }
        all.into_iter().find(|d| d.kind == super::DeviceKind::Cpu)
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::llama_model {
        self.ptr.as_ptr()
    }

    fn vocab(&self) -> *const sys::llama_vocab {
        // SAFETY: the model pointer is valid for self's lifetime; the vocab lives inside it.
        unsafe { sys::llama_model_get_vocab(self.ptr.as_ptr()) }
    }

    /// Number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        // SAFETY: valid vocab pointer.
        unsafe { sys::llama_vocab_n_tokens(self.vocab()).max(0) as usize }
    }

    /// Width of the model's hidden state (the length of a token's embedding).
    pub fn n_embd(&self) -> usize {
        // SAFETY: valid model pointer.
        unsafe { sys::llama_model_n_embd(self.ptr.as_ptr()).max(0) as usize }
    }

    /// Context length the model was trained with.
    pub fn n_ctx_train(&self) -> usize {
        // SAFETY: valid model pointer.
        unsafe { sys::llama_model_n_ctx_train(self.ptr.as_ptr()).max(0) as usize }
    }

    /// Number of transformer layers.
    pub fn n_layer(&self) -> usize {
        // SAFETY: valid model pointer.
        unsafe { sys::llama_model_n_layer(self.ptr.as_ptr()).max(0) as usize }
    }

    /// Total parameter count.
    pub fn n_params(&self) -> u64 {
        // SAFETY: valid model pointer.
        unsafe { sys::llama_model_n_params(self.ptr.as_ptr()) }
    }

    /// Model size in bytes.
    pub fn size_bytes(&self) -> u64 {
        // SAFETY: valid model pointer.
        unsafe { sys::llama_model_size(self.ptr.as_ptr()) }
    }

    /// A short description such as "llama 135M Q4_1".
    pub fn description(&self) -> String {
        let mut buf = vec![0u8; 256];
        // SAFETY: buf is writable for buf.len() bytes; llama.cpp NUL-terminates within it.
        let n =
            unsafe { sys::llama_model_desc(self.ptr.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        buf.truncate(n.clamp(0, 255) as usize);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// A metadata value from the GGUF header, e.g. `general.architecture`.
    pub fn meta(&self, key: &str) -> Option<String> {
        let key = CString::new(key).ok()?;
        let mut buf = vec![0u8; 512];
        // SAFETY: key is NUL-terminated; buf is writable for its length.
        let n = unsafe {
            sys::llama_model_meta_val_str(
                self.ptr.as_ptr(),
                key.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return None;
        }
        buf.truncate((n as usize).min(511));
        Some(String::from_utf8_lossy(&buf).into_owned())
    }

    /// True when `token` ends generation (EOS, EOT and the like).
    pub fn is_eog(&self, token: Token) -> bool {
        // SAFETY: valid vocab pointer; llama.cpp bounds-checks the id.
        unsafe { sys::llama_vocab_is_eog(self.vocab(), token) }
    }

    /// The end-of-sequence token, if the vocabulary has one.
    pub fn eos(&self) -> Option<Token> {
        // SAFETY: valid vocab pointer.
        let t = unsafe { sys::llama_vocab_eos(self.vocab()) };
        (t >= 0).then_some(t)
    }

    /// Tokenizes `text`. `add_special` adds BOS/EOS as the model is configured to;
    /// `parse_special` turns special-token text (e.g. `<|im_start|>`) into those tokens.
    pub fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<Token>> {
        let len = i32::try_from(text.len())
            .map_err(|_| Error::invalid("text too long to tokenize (over 2 GiB)"))?;
        let mut tokens: Vec<Token> = vec![0; text.len() + 8];
        loop {
            // SAFETY: text is valid for len bytes; tokens is writable for tokens.len() ids.
            let n = unsafe {
                sys::llama_tokenize(
                    self.vocab(),
                    text.as_ptr().cast(),
                    len,
                    tokens.as_mut_ptr(),
                    tokens.len() as i32,
                    add_special,
                    parse_special,
                )
            };
            if n == i32::MIN {
                return Err(Error::invalid("tokenization overflowed"));
            }
            if n >= 0 {
                tokens.truncate(n as usize);
                return Ok(tokens);
            }
            tokens.resize((-n) as usize, 0);
        }
    }

    /// The bytes of one token's text. `special` renders control tokens too. Bytes may be a
    /// partial UTF-8 sequence (byte-fallback tokens), so they are returned raw.
    pub fn token_bytes(&self, token: Token, special: bool) -> Vec<u8> {
        let mut buf = vec![0u8; 64];
        loop {
            // SAFETY: buf is writable for buf.len() bytes; no NUL terminator is written.
            let n = unsafe {
                sys::llama_token_to_piece(
                    self.vocab(),
                    token,
                    buf.as_mut_ptr().cast(),
                    buf.len() as i32,
                    0,
                    special,
                )
            };
            if n >= 0 {
                buf.truncate(n as usize);
                return buf;
            }
            buf.resize((-n) as usize, 0);
        }
    }

    /// Detokenizes a sequence into text (invalid UTF-8 is replaced).
    pub fn detokenize(&self, tokens: &[Token], special: bool) -> String {
        let mut bytes = Vec::new();
        for &t in tokens {
            bytes.extend_from_slice(&self.token_bytes(t, special));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The chat template stored in the GGUF, if any.
    pub fn builtin_chat_template(&self) -> Option<String> {
        // SAFETY: valid model pointer; the returned string is owned by the model.
        unsafe {
            let p = sys::llama_model_chat_template(self.ptr.as_ptr(), std::ptr::null());
            if p.is_null() {
                None
            } else {
                Some(CStr::from_ptr(p).to_string_lossy().into_owned())
            }
        }
    }

    /// Formats `messages` with a chat template and, if `add_assistant`, opens the assistant turn.
    ///
    /// `template` is `None` for the model's own template, or one of llama.cpp's built-in template
    /// names (`chatml`, `llama3`, `gemma`, `deepseek3`, …) or a Jinja template it recognises.
    pub fn apply_chat_template(
        &self,
        template: Option<&str>,
        messages: &[ChatMessage],
        add_assistant: bool,
    ) -> Result<String> {
        let tmpl = match template {
            Some(t) => t.to_string(),
            None => self.builtin_chat_template().ok_or_else(|| {
                Error::invalid("the model has no chat template; pass one explicitly")
            })?,
        };
        let c_tmpl = CString::new(tmpl).map_err(|_| Error::invalid("template contains NUL"))?;
        let mut owned = Vec::with_capacity(messages.len());
        for m in messages {
            let role = CString::new(m.role.as_str())
                .map_err(|_| Error::invalid("chat role contains NUL"))?;
            let content = CString::new(m.content.as_str())
                .map_err(|_| Error::invalid("chat message contains NUL"))?;
            owned.push((role, content));
        }
        let msgs: Vec<sys::llama_chat_message> = owned
            .iter()
            .map(|(r, c)| sys::llama_chat_message {
                role: r.as_ptr(),
                content: c.as_ptr(),
            })
            .collect();
        let total: usize = messages
            .iter()
            .map(|m| m.content.len() + m.role.len())
            .sum();
        let mut buf = vec![0u8; 2 * total + 256];
        loop {
            // SAFETY: all strings are NUL-terminated and outlive the call; buf is writable.
            let n = unsafe {
                sys::llama_chat_apply_template(
                    c_tmpl.as_ptr(),
                    msgs.as_ptr(),
                    msgs.len(),
                    add_assistant,
                    buf.as_mut_ptr().cast(),
                    buf.len().min(i32::MAX as usize) as i32,
                )
            };
            if n < 0 {
                return Err(Error::invalid(
                    "chat template not supported by llama.cpp; use a built-in name or \"none\"",
                ));
            }
            let n = n as usize;
            if n <= buf.len() {
                buf.truncate(n);
                return String::from_utf8(buf)
                    .map_err(|_| Error::new(ErrorCode::InvalidUtf8, "template output not UTF-8"));
            }
            buf.resize(n, 0);
        }
    }
}
