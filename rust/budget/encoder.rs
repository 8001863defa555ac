//! Text encoders for the token scheduler: the policy model's pooled prompt hidden state
//! (llama.cpp) and, with feature `onnx`, a sentence encoder run by ONNX Runtime.

use crate::engine::{Batch, Context, ContextParams, Model};
use crate::error::{Error, ErrorCode, Result};
use crate::generate::PromptParams;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which encoder produced a head's features (recorded in `head.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EncoderSpec {
    /// The policy model's mean-pooled last hidden state over the rendered prompt.
    Prompt {
        /// The model's description (llama.cpp's `model_desc`).
        model: String,
    },
    /// A sentence encoder run by ONNX Runtime: mean-pooled `last_hidden_state`, L2-normalized.
    Onnx {
        /// File name of the ONNX model the head was fitted with.
        model_file: String,
    },
}

impl EncoderSpec {
    /// `prompt` or `onnx`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Prompt { .. } => "prompt",
            Self::Onnx { .. } => "onnx",
        }
    }
}

/// Turns texts into feature vectors of one width.
pub trait Encoder: Send {
    /// One feature vector per text.
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
    /// Feature width.
    fn dim(&self) -> usize;
    /// What this encoder is.
    fn spec(&self) -> EncoderSpec;
}

/// The policy model as its own encoder: the problem is rendered with the generation prompt
/// settings and decoded once in a context of its own with hidden-state output on; the
/// features are the mean of the prompt tokens' last hidden states. No extra model is needed.
pub struct PromptEncoder {
    ctx: Context,
    batch: Batch,
    prompt: PromptParams,
}

impl PromptEncoder {
    /// An encoder on `model` with prompts rendered by `prompt`, decoding with `threads`
    /// threads (0 = all cores) and prompts up to `max_tokens` tokens (longer ones are cut).
    pub fn new(
        model: Arc<Model>,
        prompt: PromptParams,
        threads: i32,
        max_tokens: u32,
    ) -> Result<PromptEncoder> {
        let n = max_tokens.max(16);
        let cp = ContextParams {
            n_ctx: n,
            n_batch: n,
            n_seq_max: 1,
            n_threads: threads,
            ..ContextParams::default()
        };
        let mut ctx = Context::new(model, &cp)?;
        ctx.set_embeddings(true);
        Ok(PromptEncoder {
            ctx,
            batch: Batch::new(n as usize),
            prompt,
        })
    }
}

impl Encoder for PromptEncoder {
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let model = self.ctx.model().clone();
        let d = model.n_embd();
        let cap = self.ctx.n_batch() as usize;
        let mut out = Vec::with_capacity(texts.len());
        for t in texts {
            let mut tokens = self.prompt.tokenize(&model, t)?;
            tokens.truncate(cap);
            if tokens.is_empty() {
                return Err(Error::invalid("an empty prompt cannot be encoded"));
            }
            self.ctx.clear_kv();
            self.batch.clear();
            for (i, &tok) in tokens.iter().enumerate() {
                self.batch.push(tok, i as i32, 0, true)?;
            }
            self.ctx.decode(&self.batch)?;
            let mut mean = vec![0f32; d];
            for i in 0..tokens.len() {
                for (m, &h) in mean.iter_mut().zip(self.ctx.embeddings(i)?) {
                    *m += h;
                }
            }
            let n = tokens.len() as f32;
            mean.iter_mut().for_each(|m| *m /= n);
            out.push(mean);
        }
        self.ctx.clear_kv();
        Ok(out)
    }

    fn dim(&self) -> usize {
        self.ctx.model().n_embd()
    }

    fn spec(&self) -> EncoderSpec {
        EncoderSpec::Prompt {
            model: self.ctx.model().description(),
        }
    }
}

/// A sentence encoder run by ONNX Runtime (loaded at run time from `libonnxruntime.so`) with
/// its `tokenizer.json`: inputs `input_ids`, `attention_mask` and (when the model has it)
/// `token_type_ids`; output `last_hidden_state`, mean-pooled over the mask and L2-normalized.
#[cfg(feature = "onnx")]
pub struct OnnxEncoder {
    session: ort::session::Session,
    tokenizer: tokenizers::Tokenizer,
    dim: usize,
    model_file: String,
    type_ids: bool,
}

#[cfg(feature = "onnx")]
fn ort_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::ModelLoad, format!("{what}: {e}"))
}

#[cfg(feature = "onnx")]
impl OnnxEncoder {
    /// Loads ONNX Runtime from `runtime` (the path of `libonnxruntime.so`; `None`: the
    /// `ORT_DYLIB_PATH` variable or the system's library), then the encoder `model` and its
    /// `tokenizer` (texts are cut at `max_tokens` tokens). ONNX Runtime is loaded once per
    /// process: a later `runtime` is ignored.
    ///
    /// Errors: a missing file, a library that cannot be loaded or is older than ONNX Runtime
    /// 1.22, a model without `last_hidden_state`, an unreadable tokenizer.
    pub fn new(
        model: &std::path::Path,
        tokenizer: &std::path::Path,
        runtime: Option<&std::path::Path>,
        threads: usize,
        max_tokens: usize,
    ) -> Result<OnnxEncoder> {
        for p in [Some(model), Some(tokenizer), runtime]
            .into_iter()
            .flatten()
        {
            if !p.is_file() {
                return Err(Error::new(
                    ErrorCode::Io,
                    format!("{}: no such file", p.display()),
                ));
            }
        }
        let mut tok = tokenizers::Tokenizer::from_file(tokenizer)
            .map_err(|e| ort_err(&format!("tokenizer {}", tokenizer.display()), e))?;
        tok.with_padding(None);
        tok.with_truncation(Some(tokenizers::TruncationParams {
            max_length: max_tokens.max(8),
            ..Default::default()
        }))
        .map_err(|e| ort_err("tokenizer truncation", e))?;
        // ort panics when the library cannot be loaded: keep that inside.
        let runtime = runtime.map(|p| p.display().to_string());
        let model_path = model.to_path_buf();
        let session = std::panic::catch_unwind(move || -> Result<ort::session::Session> {
            if let Some(r) = runtime {
                ort::init_from(r)
                    .commit()
                    .map_err(|e| ort_err("ONNX Runtime", e))?;
            }
            ort::session::Session::builder()
                .and_then(|b| b.with_intra_threads(threads.max(1)))
                .and_then(|b| b.commit_from_file(&model_path))
                .map_err(|e| ort_err(&format!("ONNX model {}", model_path.display()), e))
        })
        .map_err(|_| {
            Error::new(
                ErrorCode::ModelLoad,
                "ONNX Runtime could not be loaded (give the path of libonnxruntime.so 1.22 or newer, or set ORT_DYLIB_PATH)",
            )
        })??;
        let out = session
            .outputs
            .iter()
            .find(|o| o.name == "last_hidden_state")
            .ok_or_else(|| ort_err("ONNX model", "no output named last_hidden_state"))?;
        let dim = match &out.output_type {
            ort::value::ValueType::Tensor { shape, .. } => shape.last().copied().unwrap_or(-1),
            _ => -1,
        };
        if dim <= 0 {
            return Err(ort_err(
                "ONNX model",
                "last_hidden_state needs a fixed last dimension",
            ));
        }
        let type_ids = session.inputs.iter().any(|i| i.name == "token_type_ids");
        Ok(OnnxEncoder {
            session,
            tokenizer: tok,
            dim: dim as usize,
            model_file: model
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            type_ids,
        })
    }
}

#[cfg(feature = "onnx")]
impl Encoder for OnnxEncoder {
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        use ort::value::Tensor;
        let mut out = Vec::with_capacity(texts.len());
        for t in texts {
            let enc = self
                .tokenizer
                .encode(*t, true)
                .map_err(|e| ort_err("tokenizing", e))?;
            let l = enc.get_ids().len();
            let ids: Vec<i64> = enc.get_ids().iter().map(|&x| x as i64).collect();
            let mask: Vec<i64> = enc.get_attention_mask().iter().map(|&x| x as i64).collect();
            let types: Vec<i64> = enc.get_type_ids().iter().map(|&x| x as i64).collect();
            let tensor = |v: Vec<i64>| Tensor::from_array(([1usize, l], v));
            let mut inputs = ort::inputs![
                "input_ids" => tensor(ids).map_err(|e| ort_err("input", e))?,
                "attention_mask" => tensor(mask.clone()).map_err(|e| ort_err("input", e))?,
            ];
            if self.type_ids {
                inputs.push((
                    "token_type_ids".into(),
                    tensor(types).map_err(|e| ort_err("input", e))?.into(),
                ));
            }
            let outputs = self
                .session
                .run(inputs)
                .map_err(|e| ort_err("ONNX Runtime", e))?;
            let (shape, data) = outputs["last_hidden_state"]
                .try_extract_tensor::<f32>()
                .map_err(|e| ort_err("last_hidden_state", e))?;
            let d = self.dim;
            if shape.len() != 3 || shape[1] as usize != l || shape[2] as usize != d {
                return Err(ort_err(
                    "last_hidden_state",
                    format!("unexpected shape {shape:?}"),
                ));
            }
            let mut pooled = vec![0f32; d];
            let mut count = 0f32;
            for (i, &m) in mask.iter().enumerate() {
                if m != 0 {
                    count += 1.0;
                    for (p, &h) in pooled.iter_mut().zip(&data[i * d..(i + 1) * d]) {
                        *p += h;
                    }
                }
            }
            let norm = pooled
                .iter()
                .map(|p| (p / count.max(1.0)) as f64)
                .map(|p| p * p)
                .sum::<f64>()
                .sqrt()
                .max(1e-12);
            out.push(
                pooled
                    .iter()
                    .map(|p| ((p / count.max(1.0)) as f64 / norm) as f32)
                    .collect(),
            );
        }
        Ok(out)
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn spec(&self) -> EncoderSpec {
        EncoderSpec::Onnx {
            model_file: self.model_file.clone(),
        }
    }
}

/// How to build an encoder (the JSON a host or a command line gives).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EncoderOptions {
    /// The policy model's pooled prompt hidden state ([`PromptEncoder`]).
    Prompt {
        /// How problems are rendered (as for generation).
        #[serde(default)]
        prompt: PromptParams,
        /// Decoding threads, 0 = all cores.
        #[serde(default)]
        threads: i32,
        /// Longest prompt in tokens (longer ones are cut).
        #[serde(default = "default_prompt_tokens")]
        max_tokens: u32,
    },
    /// An ONNX sentence encoder (feature `onnx`).
    Onnx {
        /// The `.onnx` file.
        model: String,
        /// Its `tokenizer.json`.
        tokenizer: String,
        /// `libonnxruntime.so` (default: `ORT_DYLIB_PATH` or the system's).
        #[serde(default)]
        runtime: Option<String>,
        /// Intra-op threads.
        #[serde(default = "default_onnx_threads")]
        threads: usize,
        /// Longest text in tokens (longer ones are cut).
        #[serde(default = "default_onnx_tokens")]
        max_tokens: usize,
    },
}

fn default_prompt_tokens() -> u32 {
    1024
}

fn default_onnx_threads() -> usize {
    1
}

fn default_onnx_tokens() -> usize {
    256
}

impl EncoderOptions {
    /// Parses JSON (unknown keys are errors).
    pub fn from_json(json: &str) -> Result<EncoderOptions> {
        serde_json::from_str(json).map_err(|e| Error::invalid(format!("encoder options: {e}")))
    }

    /// Builds the encoder; the prompt encoder needs the policy `model`.
    ///
    /// Errors: no model for a prompt encoder, an ONNX encoder in a build without feature
    /// `onnx`, or whatever loading the encoder fails with.
    pub fn build(&self, model: Option<Arc<Model>>) -> Result<Box<dyn Encoder>> {
        match self {
            Self::Prompt {
                prompt,
                threads,
                max_tokens,
            } => {
                let model = model
                    .ok_or_else(|| Error::invalid("the prompt encoder needs the policy model"))?;
                Ok(Box::new(PromptEncoder::new(
                    model,
                    prompt.clone(),
                    *threads,
                    *max_tokens,
                )?))
            }
            #[cfg(feature = "onnx")]
            Self::Onnx {
                model,
                tokenizer,
                runtime,
                threads,
                max_tokens,
            } => Ok(Box::new(OnnxEncoder::new(
                model.as_ref(),
                tokenizer.as_ref(),
                runtime.as_deref().map(std::path::Path::new),
                *threads,
                *max_tokens,
            )?)),
            #[cfg(not(feature = "onnx"))]
            Self::Onnx { .. } => Err(Error::new(
                ErrorCode::Unsupported,
                "this build of fmr has no ONNX encoder (feature onnx)",
            )),
        }
    }
}
