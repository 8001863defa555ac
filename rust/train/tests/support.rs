//! Test-only helpers for the trainer tests: model paths, and reference log-probs computed by
//! llama.cpp through our engine.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::engine::{Batch, Context, ContextParams, LoraAdapter, Model, ModelParams};

/// Directory holding test models: `$FMR_MODEL_DIR`, default `~/.cache/fmr/models`.
pub fn model_dir() -> PathBuf {
    match std::env::var_os("FMR_MODEL_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
            .join(".cache/fmr/models"),
    }
}

/// Path of the SmolLM2-135M-Instruct Q4_1 GGUF; panics (fails the test) when it is missing.
pub fn smollm2_q41() -> PathBuf {
    let p = model_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "test model missing: {} (set FMR_MODEL_DIR to the folder holding SmolLM2-135M-Instruct.Q4_1.gguf)",
        p.display()
    );
    p
}

/// Scratch directory for generated test files (under the target dir).
pub fn scratch_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("fmr-test");
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

static F32_LOCK: Mutex<()> = Mutex::new(());

/// SmolLM2 dequantized to F32 (written once, cached in the scratch dir).
pub fn smollm2_f32() -> PathBuf {
    let src = smollm2_q41();
    let dst = scratch_dir().join("SmolLM2-135M-Instruct.F32.gguf");
    let _g = F32_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !dst.is_file() {
        let tmp = dst.with_extension(format!("tmp{}", std::process::id()));
        crate::train::weights::dequantize_gguf_to_f32(&src, &tmp).expect("dequantize to F32");
        std::fs::rename(&tmp, &dst).expect("rename");
    }
    dst
}

/// llama.cpp, through our engine, as the reference for parity tests: one sequence, logits at
/// every position, F32 KV cache, flash attention off.
pub struct LlamaRef {
    ctx: Context,
    batch: Batch,
    n_ctx: usize,
}

impl LlamaRef {
    /// Loads `model` (and optionally a GGUF LoRA `adapter` applied with scale 1).
    pub fn new(model: &Path, adapter: Option<&Path>, n_ctx: usize) -> LlamaRef {
        LlamaRef::with_flash_attn(model, adapter, n_ctx, false)
    }

    /// As [`LlamaRef::new`], with llama.cpp's flash-attention kernel on or off (same F32 KV
    /// cache; only the attention kernel changes).
    pub fn with_flash_attn(
        model: &Path,
        adapter: Option<&Path>,
        n_ctx: usize,
        flash_attn: bool,
    ) -> LlamaRef {
        let m = Arc::new(
            Model::load(model, &ModelParams::default())
                .unwrap_or_else(|e| panic!("llama.cpp failed to load {}: {e}", model.display())),
        );
        let cp = ContextParams {
            n_ctx: n_ctx as u32,
            n_batch: n_ctx as u32,
            n_seq_max: 1,
            n_threads: 2,
            flash_attn: flash_attn as i32,
            kv_cache_f32: true,
            ..ContextParams::default()
        };
        let mut ctx = Context::new(m.clone(), &cp).expect("context");
        if let Some(a) = adapter {
            let ad = LoraAdapter::load(m, a).unwrap_or_else(|e| {
                panic!("llama.cpp failed to load adapter {}: {e}", a.display())
            });
            ctx.set_adapters(&[(ad, 1.0)]).expect("apply adapter");
        }
        LlamaRef {
            ctx,
            batch: Batch::new(n_ctx),
            n_ctx,
        }
    }

    pub fn n_vocab(&self) -> usize {
        self.ctx.model().n_vocab()
    }

    /// Tokenizes `text` with the model's tokenizer (BOS added if the model wants it).
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let ids = self
            .ctx
            .model()
            .tokenize(text, true, false)
            .expect("tokenize");
        ids.into_iter().map(|t| t as u32).collect()
    }

    /// Full logits rows for every position of `tokens` (f32, `[len][n_vocab]`).
    pub fn logits(&mut self, tokens: &[u32]) -> Vec<Vec<f32>> {
        let n = tokens.len();
        assert!(
            n <= self.n_ctx,
            "sequence longer than the reference context"
        );
        self.ctx.clear_kv();
        self.batch.clear();
        for (i, &t) in tokens.iter().enumerate() {
            self.batch.push(t as i32, i as i32, 0, true).expect("batch");
        }
        self.ctx.decode(&self.batch).expect("llama_decode");
        (0..n)
            .map(|i| self.ctx.logits(i).expect("logits").to_vec())
            .collect()
    }

    /// `log p(tokens[j] | tokens[..j])` for j in 1..len (f64 log-softmax of llama.cpp logits),
    /// plus the argmax token at positions 0..len-1.
    pub fn logprobs(&mut self, tokens: &[u32]) -> (Vec<f32>, Vec<u32>) {
        let logits = self.logits(tokens);
        let mut lp = Vec::new();
        let mut am = Vec::new();
        for j in 1..tokens.len() {
            let row = &logits[j - 1];
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let s: f64 = row.iter().map(|&v| ((v - m) as f64).exp()).sum();
            lp.push((row[tokens[j] as usize] as f64 - m as f64 - s.ln()) as f32);
            let mut best = 0;
            for (k, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = k;
                }
            }
            am.push(best as u32);
        }
        (lp, am)
    }
}

/// Mean and max of |a − b| over all entries.
pub fn diff_stats(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f64, f64) {
    let mut sum = 0f64;
    let mut max = 0f64;
    let mut n = 0usize;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len());
        for (&p, &q) in x.iter().zip(y) {
            let d = (p as f64 - q as f64).abs();
            sum += d;
            max = max.max(d);
            n += 1;
        }
    }
    (sum / n.max(1) as f64, max)
}

/// A fixed English/math text used to build realistic token sequences.
pub const TEXTS: [&str; 3] = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May? Let's think step by step.",
    "The quick brown fox jumps over the lazy dog. In mathematics, a prime number is a natural number greater than 1 that is not a product of two smaller natural numbers.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n\nprint([fibonacci(i) for i in range(10)])",
];

/// `x Wᵀ` for a Q4_1 weight `wt` (`[rows, cols]`) and activations `x` (`[n, cols]`), computed
/// two ways: with f32 activations, and with llama.cpp's CPU arithmetic emulated (rows rounded to
/// Q8_1 blocks, the f16 block-sum error added back). Returns `(f32, emulated)`, each `[n, rows]`.
pub fn q4_1_products(wt: &crate::train::weights::QTensor, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    use crate::train::cpu::actquant::round_q8_1_with_sum_error;
    let (dout, din) = (wt.rows, wt.cols);
    let n = x.len() / din;
    let w = wt.to_f32().expect("dequantize");
    let mins = wt.q4_1_block_mins().expect("a Q4_1 weight");
    let mut xr = x.to_vec();
    let err = round_q8_1_with_sum_error(&mut xr, din);
    let nb = din / 32;
    let mut plain = vec![0f32; n * dout];
    let mut emul = vec![0f32; n * dout];
    for t in 0..n {
        for o in 0..dout {
            let row = &w[o * din..(o + 1) * din];
            plain[t * dout + o] = (0..din).map(|i| x[t * din + i] * row[i]).sum();
            emul[t * dout + o] = (0..din).map(|i| xr[t * din + i] * row[i]).sum::<f32>()
                + (0..nb)
                    .map(|b| err[t * nb + b] * mins[o * nb + b])
                    .sum::<f32>();
        }
    }
    (plain, emul)
}
