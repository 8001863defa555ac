//! `GgufModel`: architecture, hyper-parameters and the frozen compact tensors of a base model.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::ggml::{GgmlType, GgufFile, TensorInfo};
use super::tensor::QTensor;
use crate::train::error::{Result, TrainError};

/// Supported decoder architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// `llama` (SmolLM2, Llama): no biases, RoPE on adjacent pairs (GGUF-permuted Q/K).
    Llama,
    /// `qwen2` (Qwen2, DeepSeek-R1-Distill-Qwen): q/k/v biases, NeoX RoPE (half-split pairs).
    Qwen2,
}

impl Arch {
    /// Parses `general.architecture`.
    pub fn from_name(name: &str) -> Result<Arch> {
        match name {
            "llama" => Ok(Arch::Llama),
            "qwen2" => Ok(Arch::Qwen2),
            other => Err(TrainError::UnsupportedArchitecture(other.to_string())),
        }
    }

    /// The GGUF architecture name.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }

    /// Whether RoPE rotates (i, i + d/2) pairs (NeoX) rather than (2i, 2i+1) pairs (normal).
    pub fn rope_neox(self) -> bool {
        matches!(self, Arch::Qwen2)
    }
}

/// Model hyper-parameters read from GGUF metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct HyperParams {
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
    pub n_ctx_train: usize,
}

impl HyperParams {
    /// `n_head * head_dim` (width of Q).
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }
    /// `n_head_kv * head_dim` (width of K and V).
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

/// The frozen tensors of one transformer block. Linear weights are `[out, in]`.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    pub(crate) attn_norm: Vec<f32>,
    pub(crate) wq: QTensor,
    pub(crate) wk: QTensor,
    pub(crate) wv: QTensor,
    pub(crate) wo: QTensor,
    pub(crate) bq: Option<Vec<f32>>,
    pub(crate) bk: Option<Vec<f32>>,
    pub(crate) bv: Option<Vec<f32>>,
    pub(crate) ffn_norm: Vec<f32>,
    pub(crate) w_gate: QTensor,
    pub(crate) w_up: QTensor,
    pub(crate) w_down: QTensor,
}

/// A base model loaded from GGUF: immutable, `Send + Sync`, share it with `Arc`.
#[derive(Clone, Debug)]
pub struct GgufModel {
    pub(crate) arch: Arch,
    pub(crate) hp: HyperParams,
    /// Token embeddings `[n_vocab, n_embd]`.
    pub(crate) tok_embd: QTensor,
    pub(crate) output_norm: Vec<f32>,
    /// Output projection `[n_vocab, n_embd]`; `None` when tied to `tok_embd`.
    pub(crate) output: Option<QTensor>,
    pub(crate) layers: Vec<LayerWeights>,
    /// `general.name` when present.
    pub(crate) name: Option<String>,
}

struct Loader<'a> {
    file: File,
    path: &'a Path,
    infos: HashMap<String, TensorInfo>,
}

impl Loader<'_> {
    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.infos
            .get(name)
            .ok_or_else(|| TrainError::corrupt(self.path, format!("missing tensor {name}")))
    }

    fn bytes(&mut self, info: &TensorInfo) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; info.size];
        self.file
            .seek(SeekFrom::Start(info.file_offset))
            .map_err(|e| TrainError::io(self.path, e))?;
        self.file
            .read_exact(&mut buf)
            .map_err(|e| TrainError::io(self.path, e))?;
        Ok(buf)
    }

    fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<QTensor> {
        let info = self.info(name)?.clone();
        if !info.ty.is_supported() {
            return Err(TrainError::UnsupportedTensorType {
                tensor: name.into(),
                type_name: info.ty.name(),
            });
        }
        if info.ne != [cols, rows] {
            return Err(TrainError::shape(name, [cols, rows], &info.ne));
        }
        let data = self.bytes(&info)?;
        QTensor::new(name.to_string(), info.ty, rows, cols, data)
    }

    fn vector(&mut self, name: &str, n: usize) -> Result<Vec<f32>> {
        let t = self.matrix_1d(name, n)?;
        t.to_f32()
    }

    fn matrix_1d(&mut self, name: &str, n: usize) -> Result<QTensor> {
        let info = self.info(name)?.clone();
        if !info.ty.is_supported() {
            return Err(TrainError::UnsupportedTensorType {
                tensor: name.into(),
                type_name: info.ty.name(),
            });
        }
        if info.ne != [n] {
            return Err(TrainError::shape(name, [n], &info.ne));
        }
        let data = self.bytes(&info)?;
        QTensor::new(name.to_string(), info.ty, 1, n, data)
    }

    fn opt_vector(&mut self, name: &str, n: usize) -> Result<Option<Vec<f32>>> {
        if self.infos.contains_key(name) {
            self.vector(name, n).map(Some)
        } else {
            Ok(None)
        }
    }
}

impl GgufModel {
    /// Opens a GGUF base model: reads metadata, checks the architecture and every tensor's shape
    /// and type, and keeps the weights in their stored (compact) types.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufModel> {
        let path = path.as_ref();
        let g = GgufFile::open(path)?;
        let arch_name = g
            .get_str("general.architecture")?
            .ok_or_else(|| TrainError::corrupt(path, "missing general.architecture"))?;
        let arch = Arch::from_name(&arch_name)?;
        let a = arch.name();
        let req = |k: &str| -> Result<usize> {
            let key = format!("{a}.{k}");
            match g.get_int(&key)? {
                Some(v) if v > 0 => Ok(v as usize),
                Some(v) => Err(TrainError::corrupt(
                    path,
                    format!("{key} = {v} is not positive"),
                )),
                None => Err(TrainError::corrupt(path, format!("missing {key}"))),
            }
        };
        let n_embd = req("embedding_length")?;
        let n_layer = req("block_count")?;
        let n_head = req("attention.head_count")?;
        let n_ff = req("feed_forward_length")?;
        let n_head_kv = match g.get_int(&format!("{a}.attention.head_count_kv"))? {
            Some(v) if v > 0 => v as usize,
            _ => n_head,
        };
        if n_embd % n_head != 0 || n_head % n_head_kv != 0 {
            return Err(TrainError::corrupt(
                path,
                "head counts do not divide the embedding width",
            ));
        }
        let head_dim = match g.get_int(&format!("{a}.attention.key_length"))? {
            Some(v) if v > 0 => v as usize,
            _ => n_embd / n_head,
        };
        if head_dim % 2 != 0 {
            return Err(TrainError::corrupt(path, "odd head dimension"));
        }
        if let Some(v) = g.get_int(&format!("{a}.rope.dimension_count"))? {
            if v as usize != head_dim {
                return Err(TrainError::corrupt(
                    path,
                    "partial RoPE (rope.dimension_count != head_dim) is not supported",
                ));
            }
        }
        if let Some(s) = g.get_str(&format!("{a}.rope.scaling.type"))? {
            if s != "none" {
                return Err(TrainError::corrupt(
                    path,
                    format!("RoPE scaling \"{s}\" is not supported"),
                ));
            }
        }
        let rms_eps = g
            .get_float(&format!("{a}.attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-5) as f32;
        let rope_base = g
            .get_float(&format!("{a}.rope.freq_base"))?
            .unwrap_or(10000.0) as f32;
        let n_ctx_train = g
            .get_int(&format!("{a}.context_length"))?
            .unwrap_or(2048)
            .max(1) as usize;
        let name = g.get_str("general.name")?;

        let infos: HashMap<String, TensorInfo> = g
            .tensors()?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        let file = File::open(path).map_err(|e| TrainError::io(path, e))?;
        let mut ld = Loader { file, path, infos };
        let tok_info = ld.info("token_embd.weight")?.clone();
        if tok_info.ne.len() != 2 || tok_info.ne[0] != n_embd {
            return Err(TrainError::shape(
                "token_embd.weight",
                [n_embd, 0],
                &tok_info.ne,
            ));
        }
        let n_vocab = tok_info.ne[1];
        let hp = HyperParams {
            n_vocab,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            rms_eps,
            rope_base,
            n_ctx_train,
        };
        let tok_embd = ld.matrix("token_embd.weight", n_vocab, n_embd)?;
        let output_norm = ld.vector("output_norm.weight", n_embd)?;
        let output = if ld.infos.contains_key("output.weight") {
            Some(ld.matrix("output.weight", n_vocab, n_embd)?)
        } else {
            None
        };
        let (qd, kvd) = (hp.q_dim(), hp.kv_dim());
        let mut layers = Vec::with_capacity(n_layer);
        for l in 0..n_layer {
            let p = |s: &str| format!("blk.{l}.{s}");
            let lw = LayerWeights {
                attn_norm: ld.vector(&p("attn_norm.weight"), n_embd)?,
                wq: ld.matrix(&p("attn_q.weight"), qd, n_embd)?,
                wk: ld.matrix(&p("attn_k.weight"), kvd, n_embd)?,
                wv: ld.matrix(&p("attn_v.weight"), kvd, n_embd)?,
                wo: ld.matrix(&p("attn_output.weight"), n_embd, qd)?,
                bq: ld.opt_vector(&p("attn_q.bias"), qd)?,
                bk: ld.opt_vector(&p("attn_k.bias"), kvd)?,
                bv: ld.opt_vector(&p("attn_v.bias"), kvd)?,
                ffn_norm: ld.vector(&p("ffn_norm.weight"), n_embd)?,
                w_gate: ld.matrix(&p("ffn_gate.weight"), n_ff, n_embd)?,
                w_up: ld.matrix(&p("ffn_up.weight"), n_ff, n_embd)?,
                w_down: ld.matrix(&p("ffn_down.weight"), n_embd, n_ff)?,
            };
            layers.push(lw);
        }
        Ok(GgufModel {
            arch,
            hp,
            tok_embd,
            output_norm,
            output,
            layers,
            name,
        })
    }

    /// The output projection (the embeddings when tied).
    /// The architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The hyper-parameters read from the file.
    pub fn hp(&self) -> &HyperParams {
        &self.hp
    }

    /// `general.name`, if the file has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn output_weight(&self) -> &QTensor {
        self.output.as_ref().unwrap_or(&self.tok_embd)
    }

    /// Bytes of frozen weight storage.
    pub fn storage_bytes(&self) -> usize {
        let mut n = self.tok_embd.nbytes()
            + self.output.as_ref().map_or(0, |t| t.nbytes())
            + self.output_norm.len() * 4;
        for l in &self.layers {
            n += [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]
                .iter()
                .map(|t| t.nbytes())
                .sum::<usize>();
            n += (l.attn_norm.len() + l.ffn_norm.len()) * 4;
            n += [&l.bq, &l.bk, &l.bv]
                .iter()
                .map(|b| b.as_ref().map_or(0, |v| v.len() * 4))
                .sum::<usize>();
        }
        n
    }

    /// The ggml type of the layer weights (of `blk.0.attn_q.weight`), for reporting.
    pub fn weight_type(&self) -> GgmlType {
        self.layers.first().map_or(self.tok_embd.ty, |l| l.wq.ty)
    }
}
