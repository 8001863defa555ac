//! Random-weight GGUF models of real architectures, for tests and benchmarks.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::ggml::{quantize, GgmlType, GgufBuilder, GgufFile, GgufValue};
use super::model::Arch;
use crate::train::error::{Result, TrainError};
use crate::train::rng::Rng;

/// Shape and storage of a random model. Presets mirror real checkpoints' shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomModelSpec {
    pub arch: Arch,
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub n_ff: usize,
    /// Width of one attention head; `None` = `n_embd / n_head`. Written as
    /// `attention.key_length` / `value_length` (Q is `n_head · head_dim` wide).
    pub head_dim: Option<usize>,
    /// Gemma 3 only: the sliding window (0 = none) of the layers the pattern picks.
    pub sliding_window: usize,
    /// Gemma 3 only: `attention.sliding_window_pattern` (layer l has the window when
    /// `l % pattern < pattern − 1`); `None` leaves llama.cpp's default, 6.
    pub sliding_window_pattern: Option<usize>,
    /// Separate `output.weight` when false; tied to the embeddings when true.
    pub tied_output: bool,
    /// Storage type of the 2-D weight matrices (norms and biases are always F32). Matrices whose
    /// row length is not a multiple of the type's block size fall back to Q8_0 (or F16), as
    /// llama.cpp's quantizer does.
    pub weight_type: GgmlType,
    /// Standard deviation of the matrix weights; `None` = `1/sqrt(n_embd)`.
    pub init_std: Option<f32>,
    pub rope_base: f32,
    pub rms_eps: f32,
    pub n_ctx: usize,
    pub seed: u64,
    /// Copy the tokenizer (every metadata key) of this GGUF, so llama.cpp can tokenize and
    /// generate with the random model; `n_vocab` must equal its token count. `None`: no
    /// tokenizer (`tokenizer.ggml.model = "none"`).
    pub tokenizer_from: Option<PathBuf>,
}

impl RandomModelSpec {
    fn base(
        arch: Arch,
        n_vocab: usize,
        n_embd: usize,
        n_layer: usize,
        n_head: usize,
        n_head_kv: usize,
        n_ff: usize,
    ) -> Self {
        RandomModelSpec {
            arch,
            n_vocab,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            n_ff,
            head_dim: None,
            sliding_window: 0,
            sliding_window_pattern: None,
            tied_output: false,
            weight_type: GgmlType::F32,
            init_std: None,
            rope_base: 10000.0,
            rms_eps: 1e-6,
            n_ctx: 4096,
            seed: 0,
            tokenizer_from: None,
        }
    }

    /// A tiny model for unit tests and gradient checks. Qwen3 and Gemma 3 get heads wider
    /// than `n_embd / n_head` (Q wider than the residual); Gemma 3 gets a 6-token window on
    /// layer 0 and a global layer 1 with another RoPE base.
    pub fn tiny(arch: Arch) -> Self {
        let base = RandomModelSpec {
            n_ctx: 256,
            ..Self::base(arch, 96, 32, 2, 4, 2, 48)
        };
        match arch {
            Arch::Qwen3 => RandomModelSpec {
                head_dim: Some(12),
                ..base
            },
            Arch::Gemma3 => RandomModelSpec {
                head_dim: Some(16),
                sliding_window: 6,
                sliding_window_pattern: Some(2),
                rope_base: 1_000_000.0,
                ..base
            },
            _ => base,
        }
    }

    /// Qwen2-0.5B shapes (tied output).
    pub fn qwen2_0_5b() -> Self {
        RandomModelSpec {
            tied_output: true,
            rope_base: 1_000_000.0,
            ..Self::base(Arch::Qwen2, 151_936, 896, 24, 14, 2, 4864)
        }
    }

    /// Qwen2-1.5B / DeepSeek-R1-Distill-Qwen-1.5B shapes.
    pub fn qwen2_1_5b() -> Self {
        Self::base(Arch::Qwen2, 151_936, 1536, 28, 12, 2, 8960)
    }

    /// Qwen2-7B / DeepSeek-R1-Distill-Qwen-7B shapes.
    pub fn qwen2_7b() -> Self {
        Self::base(Arch::Qwen2, 152_064, 3584, 28, 28, 4, 18944)
    }

    /// Qwen2-14B / DeepSeek-R1-Distill-Qwen-14B shapes.
    pub fn qwen2_14b() -> Self {
        Self::base(Arch::Qwen2, 152_064, 5120, 48, 40, 8, 13824)
    }

    /// Qwen3-0.6B shapes (tied output; Q wider than the residual: 16 heads of 128).
    pub fn qwen3_0_6b() -> Self {
        Self::qwen3(151_936, 1024, 28, 16, 8, 3072, true)
    }

    /// Qwen3-1.7B shapes (tied output).
    pub fn qwen3_1_7b() -> Self {
        Self::qwen3(151_936, 2048, 28, 16, 8, 6144, true)
    }

    /// Qwen3-8B shapes.
    pub fn qwen3_8b() -> Self {
        Self::qwen3(151_936, 4096, 36, 32, 8, 12288, false)
    }

    /// Qwen3-14B shapes.
    pub fn qwen3_14b() -> Self {
        Self::qwen3(151_936, 5120, 40, 40, 8, 17408, false)
    }

    fn qwen3(
        n_vocab: usize,
        n_embd: usize,
        n_layer: usize,
        n_head: usize,
        n_head_kv: usize,
        n_ff: usize,
        tied_output: bool,
    ) -> Self {
        RandomModelSpec {
            head_dim: Some(128),
            tied_output,
            rope_base: 1_000_000.0,
            ..Self::base(
                Arch::Qwen3,
                n_vocab,
                n_embd,
                n_layer,
                n_head,
                n_head_kv,
                n_ff,
            )
        }
    }

    /// Gemma-3-270M shapes (tied output, 4 heads of 256 over a 640-wide residual, one KV
    /// head, a 512-token sliding window on five layers in six).
    pub fn gemma3_270m() -> Self {
        Self::gemma3(640, 18, 4, 1, 2048)
    }

    /// Gemma-3-1B shapes.
    pub fn gemma3_1b() -> Self {
        Self::gemma3(1152, 26, 4, 1, 6912)
    }

    fn gemma3(n_embd: usize, n_layer: usize, n_head: usize, n_head_kv: usize, n_ff: usize) -> Self {
        RandomModelSpec {
            head_dim: Some(256),
            sliding_window: 512,
            tied_output: true,
            rope_base: 1_000_000.0,
            n_ctx: 32_768,
            ..Self::base(
                Arch::Gemma3,
                262_144,
                n_embd,
                n_layer,
                n_head,
                n_head_kv,
                n_ff,
            )
        }
    }

    /// The head width.
    pub fn head_width(&self) -> usize {
        self.head_dim.unwrap_or(self.n_embd / self.n_head.max(1))
    }

    fn validate(&self) -> Result<()> {
        let dims = [
            self.n_vocab,
            self.n_embd,
            self.n_layer,
            self.n_head,
            self.n_head_kv,
            self.n_ff,
        ];
        if dims.contains(&0) {
            return Err(TrainError::config(
                "random model dimensions must be positive",
            ));
        }
        if (self.head_dim.is_none() && self.n_embd % self.n_head != 0)
            || self.n_head % self.n_head_kv != 0
            || self.head_width() % 2 != 0
        {
            return Err(TrainError::config(
                "the head width must be even (n_embd/n_head unless head_dim is set) and n_head a \
                 multiple of n_head_kv",
            ));
        }
        if (self.sliding_window > 0 || self.sliding_window_pattern.is_some())
            && self.arch != Arch::Gemma3
        {
            return Err(TrainError::config(
                "a sliding window is written for gemma3 only",
            ));
        }
        if !self.weight_type.is_supported() {
            return Err(TrainError::UnsupportedTensorType {
                tensor: "random weights".into(),
                type_name: self.weight_type.name(),
            });
        }
        Ok(())
    }
}

/// The type a matrix with rows of `ne0` is stored in when `wanted` is requested.
fn storage_type(wanted: GgmlType, ne0: usize) -> GgmlType {
    if wanted.block_size().is_ok_and(|bs| ne0 % bs == 0) {
        wanted
    } else if ne0 % 32 == 0 {
        GgmlType::Q8_0
    } else {
        GgmlType::F16
    }
}

enum Init {
    Matrix,
    Norm,
    Bias,
}

/// Writes a random-weight GGUF for `spec` to `path` (tokenizer model "none", so llama.cpp loads it
/// with `vocab_size` dummy tokens). Memory use is one tensor at a time; quantization runs on
/// the current rayon pool.
pub fn write_random_gguf(spec: &RandomModelSpec, path: &Path) -> Result<()> {
    spec.validate()?;
    let a = spec.arch.name();
    let head_dim = spec.head_width();
    let qd = spec.n_head * head_dim;
    let kvd = spec.n_head_kv * head_dim;
    let mut tensors: Vec<(String, GgmlType, Vec<usize>, Init)> = Vec::new();
    let wt = spec.weight_type;
    tensors.push((
        "token_embd.weight".into(),
        wt,
        vec![spec.n_embd, spec.n_vocab],
        Init::Matrix,
    ));
    for l in 0..spec.n_layer {
        let p = |s: &str| format!("blk.{l}.{s}");
        tensors.push((
            p("attn_norm.weight"),
            GgmlType::F32,
            vec![spec.n_embd],
            Init::Norm,
        ));
        tensors.push((p("attn_q.weight"), wt, vec![spec.n_embd, qd], Init::Matrix));
        tensors.push((p("attn_k.weight"), wt, vec![spec.n_embd, kvd], Init::Matrix));
        tensors.push((p("attn_v.weight"), wt, vec![spec.n_embd, kvd], Init::Matrix));
        if spec.arch.has_qkv_bias() {
            tensors.push((p("attn_q.bias"), GgmlType::F32, vec![qd], Init::Bias));
            tensors.push((p("attn_k.bias"), GgmlType::F32, vec![kvd], Init::Bias));
            tensors.push((p("attn_v.bias"), GgmlType::F32, vec![kvd], Init::Bias));
        }
        if spec.arch.qk_norm() {
            for n in ["attn_q_norm.weight", "attn_k_norm.weight"] {
                tensors.push((p(n), GgmlType::F32, vec![head_dim], Init::Norm));
            }
        }
        tensors.push((
            p("attn_output.weight"),
            wt,
            vec![qd, spec.n_embd],
            Init::Matrix,
        ));
        if spec.arch.post_norms() {
            for n in ["post_attention_norm.weight", "post_ffw_norm.weight"] {
                tensors.push((p(n), GgmlType::F32, vec![spec.n_embd], Init::Norm));
            }
        }
        tensors.push((
            p("ffn_norm.weight"),
            GgmlType::F32,
            vec![spec.n_embd],
            Init::Norm,
        ));
        tensors.push((
            p("ffn_gate.weight"),
            wt,
            vec![spec.n_embd, spec.n_ff],
            Init::Matrix,
        ));
        tensors.push((
            p("ffn_up.weight"),
            wt,
            vec![spec.n_embd, spec.n_ff],
            Init::Matrix,
        ));
        tensors.push((
            p("ffn_down.weight"),
            wt,
            vec![spec.n_ff, spec.n_embd],
            Init::Matrix,
        ));
    }
    tensors.push((
        "output_norm.weight".into(),
        GgmlType::F32,
        vec![spec.n_embd],
        Init::Norm,
    ));
    if !spec.tied_output {
        tensors.push((
            "output.weight".into(),
            wt,
            vec![spec.n_embd, spec.n_vocab],
            Init::Matrix,
        ));
    }

    let mut b = GgufBuilder::new(tensors.len())?;
    if let Some(src) = &spec.tokenizer_from {
        let g = GgufFile::open(src)?;
        match g.get("tokenizer.ggml.tokens") {
            Some(GgufValue::Array(n)) if n == spec.n_vocab => {}
            Some(GgufValue::Array(n)) => {
                return Err(TrainError::config(format!(
                    "the tokenizer of {} has {n} tokens; set n_vocab to it",
                    src.display()
                )))
            }
            _ => {
                return Err(TrainError::corrupt(src, "no tokenizer.ggml.tokens array"));
            }
        }
        b.copy_kv_from(&g);
    }
    b.set_str("general.architecture", a)?;
    b.set_str("general.name", &format!("random-{a}"))?;
    b.set_u32("general.alignment", 32)?;
    b.set_u32(&format!("{a}.context_length"), spec.n_ctx as u32)?;
    b.set_u32(&format!("{a}.embedding_length"), spec.n_embd as u32)?;
    b.set_u32(&format!("{a}.block_count"), spec.n_layer as u32)?;
    b.set_u32(&format!("{a}.feed_forward_length"), spec.n_ff as u32)?;
    b.set_u32(&format!("{a}.attention.head_count"), spec.n_head as u32)?;
    b.set_u32(
        &format!("{a}.attention.head_count_kv"),
        spec.n_head_kv as u32,
    )?;
    b.set_f32(&format!("{a}.rope.freq_base"), spec.rope_base)?;
    b.set_f32(
        &format!("{a}.attention.layer_norm_rms_epsilon"),
        spec.rms_eps,
    )?;
    b.set_u32(&format!("{a}.vocab_size"), spec.n_vocab as u32)?;
    b.set_u32(&format!("{a}.rope.dimension_count"), head_dim as u32)?;
    if spec.head_dim.is_some() {
        b.set_u32(&format!("{a}.attention.key_length"), head_dim as u32)?;
        b.set_u32(&format!("{a}.attention.value_length"), head_dim as u32)?;
    }
    if spec.sliding_window > 0 {
        b.set_u32(
            &format!("{a}.attention.sliding_window"),
            spec.sliding_window as u32,
        )?;
        if let Some(p) = spec.sliding_window_pattern {
            b.set_u32(&format!("{a}.attention.sliding_window_pattern"), p as u32)?;
        }
    }
    if spec.tokenizer_from.is_none() {
        b.set_str("tokenizer.ggml.model", "none")?;
    }
    for (_, ty, ne, init) in tensors.iter_mut() {
        if matches!(init, Init::Matrix) {
            *ty = storage_type(*ty, ne[0]);
        }
    }
    for (name, ty, ne, _) in &tensors {
        b.add_tensor(name, *ty, ne)?;
    }
    let std = spec.init_std.unwrap_or(1.0 / (spec.n_embd as f32).sqrt());
    let mut rng = Rng::new(spec.seed);
    let mut vals: Vec<f32> = Vec::new();
    b.write(path, |i, _name, out| {
        let (_, ty, ne, init) = &tensors[i];
        let n: usize = ne.iter().product();
        vals.clear();
        // Uniform with the requested standard deviation (sqrt(3) * std half-width).
        let h = std * 3f32.sqrt();
        match init {
            Init::Matrix => vals.extend((0..n).map(|_| rng.uniform(-h, h))),
            Init::Norm => vals.extend((0..n).map(|_| 1.0 + rng.uniform(-0.2, 0.2))),
            Init::Bias => vals.extend((0..n).map(|_| rng.uniform(-0.1, 0.1))),
        }
        // Quantized in parallel over row blocks (ggml's quantizer is row-wise and reentrant).
        let rows_per = ((1 << 20) / ne[0]).max(1);
        let parts: Vec<Result<Vec<u8>>> = vals
            .par_chunks(rows_per * ne[0])
            .map(|c| quantize(*ty, c, ne[0]))
            .collect();
        for p in parts {
            out.extend(p?);
        }
        Ok(())
    })
}
