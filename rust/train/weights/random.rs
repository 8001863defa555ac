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

    /// A tiny model for unit tests and gradient checks.
    pub fn tiny(arch: Arch) -> Self {
        RandomModelSpec {
            n_ctx: 256,
            ..Self::base(arch, 96, 32, 2, 4, 2, 48)
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
        if self.n_embd % self.n_head != 0
            || self.n_head % self.n_head_kv != 0
            || (self.n_embd / self.n_head) % 2 != 0
        {
            return Err(TrainError::config(
                "n_embd/n_head must be even and n_head a multiple of n_head_kv",
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
    let head_dim = spec.n_embd / spec.n_head;
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
        tensors.push((
            p("attn_q.weight"),
            wt,
            vec![spec.n_embd, spec.n_embd],
            Init::Matrix,
        ));
        tensors.push((p("attn_k.weight"), wt, vec![spec.n_embd, kvd], Init::Matrix));
        tensors.push((p("attn_v.weight"), wt, vec![spec.n_embd, kvd], Init::Matrix));
        if spec.arch == Arch::Qwen2 {
            tensors.push((
                p("attn_q.bias"),
                GgmlType::F32,
                vec![spec.n_embd],
                Init::Bias,
            ));
            tensors.push((p("attn_k.bias"), GgmlType::F32, vec![kvd], Init::Bias));
            tensors.push((p("attn_v.bias"), GgmlType::F32, vec![kvd], Init::Bias));
        }
        tensors.push((
            p("attn_output.weight"),
            wt,
            vec![spec.n_embd, spec.n_embd],
            Init::Matrix,
        ));
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
