//! `GgufModel`: architecture, hyper-parameters and the frozen compact tensors of a base model.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::ggml::{GgmlType, GgufFile, GgufValue, TensorInfo};
use super::tensor::QTensor;
use crate::train::error::{Result, TrainError};

/// Supported decoder architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// `llama` (SmolLM2, Llama): no biases, RoPE on adjacent pairs (GGUF-permuted Q/K).
    Llama,
    /// `qwen2` (Qwen2, DeepSeek-R1-Distill-Qwen): q/k/v biases, NeoX RoPE (half-split pairs).
    Qwen2,
    /// `qwen3` (Qwen3): no biases, RMS norms over each query and key head before RoPE, NeoX
    /// RoPE, head width from `attention.key_length` (Q may be wider than the residual).
    Qwen3,
    /// `gemma3` (Gemma 3): embeddings scaled by √d, q/k head norms, RMS norms after the
    /// attention and the MLP too, GeGLU (tanh GELU), NeoX RoPE with a local base on
    /// sliding-window layers (five of every six) and a global base on the others.
    Gemma3,
}

/// The gated activation of the MLP: `act(gate) · up`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FfnAct {
    /// `silu(g) · u` (llama, qwen).
    Silu,
    /// `gelu_tanh(g) · u` (gemma).
    GeluTanh,
}

impl Arch {
    /// Parses `general.architecture`.
    pub fn from_name(name: &str) -> Result<Arch> {
        match name {
            "llama" => Ok(Arch::Llama),
            "qwen2" => Ok(Arch::Qwen2),
            "qwen3" => Ok(Arch::Qwen3),
            "gemma3" => Ok(Arch::Gemma3),
            other => Err(TrainError::UnsupportedArchitecture(other.to_string())),
        }
    }

    /// The GGUF architecture name.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
        }
    }

    /// Whether RoPE rotates (i, i + d/2) pairs (NeoX) rather than (2i, 2i+1) pairs (normal).
    pub fn rope_neox(self) -> bool {
        !matches!(self, Arch::Llama)
    }

    /// Whether each query and key head is RMS-normalised (own weights) before RoPE.
    pub fn qk_norm(self) -> bool {
        matches!(self, Arch::Qwen3 | Arch::Gemma3)
    }

    /// Whether the attention and MLP outputs are RMS-normalised before the residual add.
    pub fn post_norms(self) -> bool {
        matches!(self, Arch::Gemma3)
    }

    /// The MLP's gated activation.
    pub fn ffn_act(self) -> FfnAct {
        match self {
            Arch::Gemma3 => FfnAct::GeluTanh,
            _ => FfnAct::Silu,
        }
    }

    /// Whether the architecture may carry q/k/v biases.
    pub fn has_qkv_bias(self) -> bool {
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
    /// RoPE base of full-attention layers.
    pub rope_base: f32,
    pub n_ctx_train: usize,
    /// Token embeddings are multiplied by this (√n_embd for gemma, else 1).
    pub embd_scale: f32,
    /// Attention scores are `q·k · attn_scale` (`1/√head_dim` unless the model says otherwise).
    pub attn_scale: f32,
    /// Sliding-window layers: a query at position p sees keys at positions `> p − swa_window`
    /// (0 = no layer has a window).
    pub swa_window: usize,
    /// Per layer: whether it uses the sliding window (and [`HyperParams::rope_base_swa`]).
    pub swa_layers: Vec<bool>,
    /// RoPE base of sliding-window layers.
    pub rope_base_swa: f32,
    /// Per-head RMS norms of queries and keys before RoPE.
    pub qk_norm: bool,
    /// RMS norms of the attention and MLP outputs before the residual adds.
    pub post_norms: bool,
    pub ffn_act: FfnAct,
    /// RoPE on (i, i + d/2) pairs.
    pub rope_neox: bool,
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
    /// Whether layer `l` uses the sliding window.
    pub fn is_swa(&self, l: usize) -> bool {
        self.swa_window > 0 && self.swa_layers.get(l).copied().unwrap_or(false)
    }
    /// The attention window of layer `l` in tokens (0 = causal without a window).
    pub fn window(&self, l: usize) -> usize {
        if self.is_swa(l) {
            self.swa_window
        } else {
            0
        }
    }
    /// The RoPE base of layer `l`.
    pub fn rope_base_of(&self, l: usize) -> f32 {
        if self.is_swa(l) {
            self.rope_base_swa
        } else {
            self.rope_base
        }
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
    /// Per-head query / key norm weights (`[head_dim]`), when the architecture has them.
    pub(crate) q_norm: Option<Vec<f32>>,
    pub(crate) k_norm: Option<Vec<f32>>,
    /// Norm weights of the attention and MLP outputs (`[n_embd]`), when it has them.
    pub(crate) attn_post_norm: Option<Vec<f32>>,
    pub(crate) ffn_post_norm: Option<Vec<f32>>,
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

    /// Fails when the file has tensor `name` (one this architecture's graph would ignore).
    fn reject(&self, name: &str) -> Result<()> {
        if self.infos.contains_key(name) {
            return Err(TrainError::corrupt(
                self.path,
                format!("unexpected tensor {name} for this architecture"),
            ));
        }
        Ok(())
    }

    fn opt_vector(&mut self, name: &str, n: usize) -> Result<Option<Vec<f32>>> {
        if self.infos.contains_key(name) {
            self.vector(name, n).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Gemma 3's sliding-window layout as llama.cpp reads it: `attention.sliding_window` (0 or
/// absent = no window), `attention.sliding_window_pattern` (default 6: layer l uses the window
/// when `l % 6 < 5`) and `rope.freq_base_swa` (default 10000).
fn swa_layout(
    g: &GgufFile,
    path: &Path,
    a: &str,
    n_layer: usize,
) -> Result<(usize, Vec<bool>, f32)> {
    let window = g
        .get_int(&format!("{a}.attention.sliding_window"))?
        .unwrap_or(0)
        .max(0) as usize;
    let base_swa = g
        .get_float(&format!("{a}.rope.freq_base_swa"))?
        .unwrap_or(10000.0) as f32;
    if window == 0 {
        return Ok((0, vec![false; n_layer], base_swa));
    }
    let key = format!("{a}.attention.sliding_window_pattern");
    let pattern = match g.get(&key) {
        None => 6,
        Some(GgufValue::Int(v)) if v >= 0 => v as usize,
        Some(_) => {
            return Err(TrainError::corrupt(
                path,
                format!("{key}: only an integer pattern is supported"),
            ))
        }
    };
    let layers = (0..n_layer)
        .map(|l| pattern == 0 || l % pattern < pattern - 1)
        .collect();
    Ok((window, layers, base_swa))
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
        let key_length = g
            .get_int(&format!("{a}.attention.key_length"))?
            .filter(|&v| v > 0);
        if (key_length.is_none() && n_embd % n_head != 0) || n_head % n_head_kv != 0 {
            return Err(TrainError::corrupt(
                path,
                "head counts do not divide the embedding width",
            ));
        }
        let head_dim = key_length.map_or(n_embd / n_head, |v| v as usize);
        if let Some(v) = g.get_int(&format!("{a}.attention.value_length"))? {
            if v as usize != head_dim {
                return Err(TrainError::corrupt(
                    path,
                    "value heads wider or narrower than key heads are not supported",
                ));
            }
        }
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
        if let Some(c) = g.get_float(&format!("{a}.final_logit_softcapping"))? {
            if c != 0.0 {
                return Err(TrainError::corrupt(
                    path,
                    "final logit soft-capping is not supported",
                ));
            }
        }
        let (swa_window, swa_layers, rope_base_swa) = if arch == Arch::Gemma3 {
            swa_layout(&g, path, a, n_layer)?
        } else {
            (0, vec![false; n_layer], rope_base)
        };
        let attn_scale = match arch {
            // Gemma 3 27B scales by 1/√(n_embd / n_head) (llama.cpp's f_attention_scale).
            Arch::Gemma3 if n_layer == 62 => 1.0 / ((n_embd / n_head) as f32).sqrt(),
            _ => 1.0 / (head_dim as f32).sqrt(),
        };
        let embd_scale = if arch == Arch::Gemma3 {
            (n_embd as f32).sqrt()
        } else {
            1.0
        };
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
            embd_scale,
            attn_scale,
            swa_window,
            swa_layers,
            rope_base_swa,
            qk_norm: arch.qk_norm(),
            post_norms: arch.post_norms(),
            ffn_act: arch.ffn_act(),
            rope_neox: arch.rope_neox(),
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
            let hd = hp.head_dim;
            let bias = |ld: &mut Loader, s: &str, n: usize| -> Result<Option<Vec<f32>>> {
                if arch.has_qkv_bias() {
                    ld.opt_vector(&p(s), n)
                } else {
                    ld.reject(&p(s))?;
                    Ok(None)
                }
            };
            let (q_norm, k_norm) = if arch.qk_norm() {
                (
                    Some(ld.vector(&p("attn_q_norm.weight"), hd)?),
                    Some(ld.vector(&p("attn_k_norm.weight"), hd)?),
                )
            } else {
                (None, None)
            };
            let (attn_post_norm, ffn_post_norm) = if arch.post_norms() {
                (
                    Some(ld.vector(&p("post_attention_norm.weight"), n_embd)?),
                    Some(ld.vector(&p("post_ffw_norm.weight"), n_embd)?),
                )
            } else {
                (None, None)
            };
            let lw = LayerWeights {
                attn_norm: ld.vector(&p("attn_norm.weight"), n_embd)?,
                wq: ld.matrix(&p("attn_q.weight"), qd, n_embd)?,
                wk: ld.matrix(&p("attn_k.weight"), kvd, n_embd)?,
                wv: ld.matrix(&p("attn_v.weight"), kvd, n_embd)?,
                wo: ld.matrix(&p("attn_output.weight"), n_embd, qd)?,
                bq: bias(&mut ld, "attn_q.bias", qd)?,
                bk: bias(&mut ld, "attn_k.bias", kvd)?,
                bv: bias(&mut ld, "attn_v.bias", kvd)?,
                ffn_norm: ld.vector(&p("ffn_norm.weight"), n_embd)?,
                q_norm,
                k_norm,
                attn_post_norm,
                ffn_post_norm,
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
            n += [&l.q_norm, &l.k_norm, &l.attn_post_norm, &l.ffn_post_norm]
                .iter()
                .map(|b| b.as_ref().map_or(0, |v| v.len() * 4))
                .sum::<usize>();
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
