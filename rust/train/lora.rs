//! LoRA adapters: configuration, PEFT-style initialisation and parameter storage.
//!
//! For a frozen linear layer `y = x Wᵀ` (W: `[out, in]`) the adapter adds `s · (x Aᵀ) Bᵀ` with
//! A: `[r, in]`, B: `[out, r]` and `s = alpha / r`. B rows follow the GGUF row order of W (for
//! `llama`, Q/K rows are GGUF-permuted; PEFT export undoes that).

use serde::{Deserialize, Serialize};

use crate::train::error::{Result, TrainError};
use crate::train::rng::Rng;
use crate::train::weights::{GgufModel, HyperParams};

/// The linear layers LoRA may adapt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum LoraTarget {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl LoraTarget {
    /// All targets in canonical order.
    pub const ALL: [LoraTarget; 7] = [
        LoraTarget::Q,
        LoraTarget::K,
        LoraTarget::V,
        LoraTarget::O,
        LoraTarget::Gate,
        LoraTarget::Up,
        LoraTarget::Down,
    ];

    /// Index in [`LoraTarget::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// PEFT / Hugging Face module name (`q_proj`, …, `down_proj`).
    pub fn hf_name(self) -> &'static str {
        match self {
            LoraTarget::Q => "q_proj",
            LoraTarget::K => "k_proj",
            LoraTarget::V => "v_proj",
            LoraTarget::O => "o_proj",
            LoraTarget::Gate => "gate_proj",
            LoraTarget::Up => "up_proj",
            LoraTarget::Down => "down_proj",
        }
    }

    /// Parent module in the HF model (`self_attn` or `mlp`).
    pub fn hf_parent(self) -> &'static str {
        match self {
            LoraTarget::Q | LoraTarget::K | LoraTarget::V | LoraTarget::O => "self_attn",
            _ => "mlp",
        }
    }

    /// GGUF base-tensor stem (`attn_q`, …, `ffn_down`).
    pub fn gguf_name(self) -> &'static str {
        match self {
            LoraTarget::Q => "attn_q",
            LoraTarget::K => "attn_k",
            LoraTarget::V => "attn_v",
            LoraTarget::O => "attn_output",
            LoraTarget::Gate => "ffn_gate",
            LoraTarget::Up => "ffn_up",
            LoraTarget::Down => "ffn_down",
        }
    }

    /// Parses `q`, `q_proj`, `attn_q`, … (case-insensitive).
    pub fn parse(s: &str) -> Option<LoraTarget> {
        let s = s.to_ascii_lowercase();
        LoraTarget::ALL.into_iter().find(|t| {
            s == t.hf_name() || s == t.gguf_name() || s == t.hf_name().trim_end_matches("_proj")
        })
    }

    /// `(in, out)` dimensions of the adapted layer.
    pub fn dims(self, hp: &HyperParams) -> (usize, usize) {
        match self {
            LoraTarget::Q => (hp.n_embd, hp.q_dim()),
            LoraTarget::K | LoraTarget::V => (hp.n_embd, hp.kv_dim()),
            LoraTarget::O => (hp.q_dim(), hp.n_embd),
            LoraTarget::Gate | LoraTarget::Up => (hp.n_embd, hp.n_ff),
            LoraTarget::Down => (hp.n_ff, hp.n_embd),
        }
    }
}

/// LoRA hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank r (≥ 1).
    pub rank: usize,
    /// Scaling numerator: the update is scaled by `alpha / rank`.
    pub alpha: f32,
    /// Adapted layers (in every block); duplicates are ignored.
    pub targets: Vec<LoraTarget>,
    /// Seed of A's initialisation.
    pub seed: u64,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            rank: 8,
            alpha: 16.0,
            targets: LoraTarget::ALL.to_vec(),
            seed: 0,
        }
    }
}

impl LoraConfig {
    /// Checks rank, alpha and targets.
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            return Err(TrainError::config("LoRA rank must be >= 1"));
        }
        if !self.alpha.is_finite() || self.alpha <= 0.0 {
            return Err(TrainError::config("LoRA alpha must be positive and finite"));
        }
        if self.targets.is_empty() {
            return Err(TrainError::config("LoRA needs at least one target module"));
        }
        Ok(())
    }

    /// `alpha / rank`.
    pub fn scaling(&self) -> f32 {
        self.alpha / self.rank as f32
    }

    fn has(&self, t: LoraTarget) -> bool {
        self.targets.contains(&t)
    }
}

/// Adapter parameters (or gradients / optimiser moments of the same shape).
///
/// `params()` lists tensors in a fixed order: for each layer, for each target in
/// [`LoraTarget::ALL`] order that is enabled, A (`[r, in]` row-major) then B (`[out, r]`).
#[derive(Clone, Debug, PartialEq)]
pub struct LoraWeights {
    pub(crate) config: LoraConfig,
    n_layer: usize,
    dims: [(usize, usize); 7],
    /// `slot[layer * 7 + target]` = index of A in `params` (B follows).
    slot: Vec<Option<usize>>,
    params: Vec<Vec<f32>>,
}

impl LoraWeights {
    /// The rank, scaling and targets these weights were made with.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// Zero-filled adapter for `hp`.
    pub fn zeros(config: &LoraConfig, hp: &HyperParams) -> Result<Self> {
        config.validate()?;
        let dims = LoraTarget::ALL.map(|t| t.dims(hp));
        let mut slot = vec![None; hp.n_layer * 7];
        let mut params = Vec::new();
        for l in 0..hp.n_layer {
            for t in LoraTarget::ALL {
                if config.has(t) {
                    let (i, o) = dims[t.index()];
                    slot[l * 7 + t.index()] = Some(params.len());
                    params.push(vec![0f32; config.rank * i]);
                    params.push(vec![0f32; o * config.rank]);
                }
            }
        }
        Ok(LoraWeights {
            config: config.clone(),
            n_layer: hp.n_layer,
            dims,
            slot,
            params,
        })
    }

    /// PEFT's default initialisation: A ~ U(−1/√in, 1/√in) (Kaiming-uniform with a = √5), B = 0.
    pub fn new(config: &LoraConfig, model: &GgufModel) -> Result<Self> {
        let mut w = Self::zeros(config, &model.hp)?;
        let mut rng = Rng::new(config.seed);
        for l in 0..w.n_layer {
            for t in LoraTarget::ALL {
                if let Some(i) = w.slot[l * 7 + t.index()] {
                    let bound = 1.0 / (w.dims[t.index()].0 as f32).sqrt();
                    for v in &mut w.params[i] {
                        *v = rng.uniform(-bound, bound);
                    }
                }
            }
        }
        Ok(w)
    }

    /// A zero-filled tensor set of the same shape (for gradients and moments).
    pub fn zeros_like(&self) -> Self {
        let mut z = self.clone();
        z.zero();
        z
    }

    /// Sets every value to 0.
    pub fn zero(&mut self) {
        for p in &mut self.params {
            p.fill(0.0);
        }
    }

    /// Number of transformer layers.
    pub fn n_layer(&self) -> usize {
        self.n_layer
    }

    /// `(in, out)` of a target.
    pub fn dims(&self, t: LoraTarget) -> (usize, usize) {
        self.dims[t.index()]
    }

    /// `alpha / rank`.
    pub fn scaling(&self) -> f32 {
        self.config.scaling()
    }

    /// A (`[r, in]`) and B (`[out, r]`) of one layer's target, if adapted.
    pub fn pair(&self, layer: usize, t: LoraTarget) -> Option<(&[f32], &[f32])> {
        let i = (*self.slot.get(layer * 7 + t.index())?)?;
        Some((&self.params[i], &self.params[i + 1]))
    }

    /// Mutable A and B of one layer's target.
    pub fn pair_mut(&mut self, layer: usize, t: LoraTarget) -> Option<(&mut [f32], &mut [f32])> {
        let i = (*self.slot.get(layer * 7 + t.index())?)?;
        let (a, b) = self.params.split_at_mut(i + 1);
        Some((&mut a[i], &mut b[0]))
    }

    /// All tensors in canonical order (see the type docs).
    pub fn params(&self) -> &[Vec<f32>] {
        &self.params
    }

    /// Mutable tensors in canonical order.
    pub fn params_mut(&mut self) -> &mut [Vec<f32>] {
        &mut self.params
    }

    /// `(layer, target)` of every adapted layer, canonical order.
    pub fn entries(&self) -> Vec<(usize, LoraTarget)> {
        let mut v = Vec::new();
        for l in 0..self.n_layer {
            for t in LoraTarget::ALL {
                if self.slot[l * 7 + t.index()].is_some() {
                    v.push((l, t));
                }
            }
        }
        v
    }

    /// Total number of scalars.
    pub fn n_params(&self) -> usize {
        self.params.iter().map(Vec::len).sum()
    }

    /// `self += s · other` (shapes must match).
    pub fn add_scaled(&mut self, other: &LoraWeights, s: f32) -> Result<()> {
        self.check_same_shape(other)?;
        for (p, q) in self.params.iter_mut().zip(&other.params) {
            for (a, &b) in p.iter_mut().zip(q) {
                *a += s * b;
            }
        }
        Ok(())
    }

    /// Multiplies every value by `s`.
    pub fn scale(&mut self, s: f32) {
        for p in &mut self.params {
            for v in p {
                *v *= s;
            }
        }
    }

    /// Euclidean norm over all tensors (f64 accumulation).
    pub fn norm(&self) -> f64 {
        self.params
            .iter()
            .flatten()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt()
    }

    /// Errors unless `other` has the same layers, targets, rank and dims.
    pub fn check_same_shape(&self, other: &LoraWeights) -> Result<()> {
        if self.slot != other.slot
            || self.dims != other.dims
            || self.config.rank != other.config.rank
        {
            return Err(TrainError::shape(
                "LoRA tensors",
                self.entries().len(),
                other.entries().len(),
            ));
        }
        Ok(())
    }

    /// Errors unless this adapter fits `hp`.
    pub fn check_model(&self, hp: &HyperParams) -> Result<()> {
        let dims = LoraTarget::ALL.map(|t| t.dims(hp));
        if self.n_layer != hp.n_layer || self.dims != dims {
            return Err(TrainError::shape(
                "LoRA adapter vs model",
                (hp.n_layer, dims),
                (self.n_layer, self.dims),
            ));
        }
        Ok(())
    }
}
