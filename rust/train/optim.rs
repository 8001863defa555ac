//! AdamW with global grad-norm clipping and learning-rate schedules (warm-up + constant /
//! linear / cosine decay). Gradient accumulation: sum micro-batch gradients into one
//! `LoraWeights` and pass `grad_scale = 1 / n_micro` to [`AdamW::step`].

use serde::{Deserialize, Serialize};

use crate::train::error::{Result, TrainError};
use crate::train::lora::LoraWeights;

/// Learning-rate multiplier as a function of the optimizer step (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Linear warm-up over `warmup` steps, then 1.
    Constant { warmup: u64 },
    /// Warm-up, then linear decay to 0 at `total`.
    Linear { warmup: u64, total: u64 },
    /// Warm-up, then half-cosine decay to `min_ratio` at `total`.
    Cosine {
        warmup: u64,
        total: u64,
        min_ratio: f32,
    },
}

impl Schedule {
    /// Multiplier in [0, 1] for `step` (warm-up reaches 1 at `step = warmup`, like
    /// Hugging Face's `get_*_schedule_with_warmup`).
    pub fn factor(&self, step: u64) -> f32 {
        let warm = |w: u64| {
            if w > 0 && step < w {
                Some(step as f32 / w as f32)
            } else {
                None
            }
        };
        match *self {
            Schedule::Constant { warmup } => warm(warmup).unwrap_or(1.0),
            Schedule::Linear { warmup, total } => warm(warmup).unwrap_or_else(|| {
                let span = total.saturating_sub(warmup).max(1) as f32;
                (1.0 - (step - warmup) as f32 / span).max(0.0)
            }),
            Schedule::Cosine {
                warmup,
                total,
                min_ratio,
            } => warm(warmup).unwrap_or_else(|| {
                let span = total.saturating_sub(warmup).max(1) as f32;
                let p = ((step - warmup) as f32 / span).min(1.0);
                min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + (std::f32::consts::PI * p).cos())
            }),
        }
    }

    fn validate(&self) -> Result<()> {
        match *self {
            Schedule::Constant { .. } => Ok(()),
            Schedule::Linear { warmup, total } | Schedule::Cosine { warmup, total, .. }
                if total < warmup =>
            {
                Err(TrainError::config(
                    "schedule total steps must be >= warmup steps",
                ))
            }
            Schedule::Cosine { min_ratio, .. } if !(0.0..=1.0).contains(&min_ratio) => {
                Err(TrainError::config("cosine min_ratio must be in [0, 1]"))
            }
            _ => Ok(()),
        }
    }
}

/// AdamW hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    /// Peak learning rate.
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Decoupled weight decay (applied as `p -= lr · wd · p`).
    pub weight_decay: f32,
    /// Clip the global gradient L2 norm to this value (after `grad_scale`); `None` = no clipping.
    pub max_grad_norm: Option<f32>,
    pub schedule: Schedule,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: Some(1.0),
            schedule: Schedule::Constant { warmup: 0 },
        }
    }
}

impl AdamWConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        let ok = self.lr.is_finite()
            && self.lr >= 0.0
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps > 0.0
            && self.weight_decay >= 0.0
            && self.max_grad_norm.is_none_or(|g| g > 0.0);
        if !ok {
            return Err(TrainError::config("AdamW: need lr >= 0, betas in [0,1), eps > 0, weight_decay >= 0, max_grad_norm > 0"));
        }
        self.schedule.validate()
    }
}

/// What one optimizer step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Learning rate used.
    pub lr: f32,
    /// Global gradient norm before clipping (after `grad_scale`).
    pub grad_norm: f64,
    /// Step number after this step (1-based count of steps taken).
    pub step: u64,
}

/// AdamW state: moments shaped like the adapter, and the step count.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    pub(crate) config: AdamWConfig,
    /// Steps taken so far.
    pub(crate) step: u64,
    pub(crate) m: LoraWeights,
    pub(crate) v: LoraWeights,
}

impl AdamW {
    /// Fresh state for parameters shaped like `params`.
    pub fn new(config: AdamWConfig, params: &LoraWeights) -> Result<Self> {
        config.validate()?;
        Ok(AdamW {
            config,
            step: 0,
            m: params.zeros_like(),
            v: params.zeros_like(),
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The configuration.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Learning rate for the next step.
    pub fn current_lr(&self) -> f32 {
        self.config.lr * self.config.schedule.factor(self.step)
    }

    /// Applies one update: `g = grad_scale · grads`, clipped to `max_grad_norm`, then AdamW with
    /// bias correction. Non-finite gradients are rejected (parameters untouched).
    pub fn step(
        &mut self,
        params: &mut LoraWeights,
        grads: &LoraWeights,
        grad_scale: f32,
    ) -> Result<StepStats> {
        params.check_same_shape(grads)?;
        params.check_same_shape(&self.m)?;
        let norm = grads.norm() * grad_scale.abs() as f64;
        if !norm.is_finite() {
            return Err(TrainError::NonFinite(format!(
                "the gradient norm is {norm} at optimizer step {}; parameters left unchanged",
                self.step + 1
            )));
        }
        let clip = match self.config.max_grad_norm {
            Some(mx) if norm > mx as f64 => (mx as f64 / (norm + 1e-6)) as f32,
            _ => 1.0,
        };
        let lr = self.current_lr();
        let c = &self.config;
        let t = (self.step + 1) as i32;
        let bc1 = 1.0 - (c.beta1 as f64).powi(t);
        let bc2 = 1.0 - (c.beta2 as f64).powi(t);
        let step_size = (lr as f64 / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let gs = grad_scale * clip;
        for (((p, g), m), v) in params
            .params_mut()
            .iter_mut()
            .zip(grads.params())
            .zip(self.m.params_mut())
            .zip(self.v.params_mut())
        {
            for i in 0..p.len() {
                let gi = g[i] * gs;
                m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * gi;
                v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * gi * gi;
                p[i] -= lr * c.weight_decay * p[i];
                p[i] -= step_size * m[i] / (v[i].sqrt() / bc2_sqrt + c.eps);
            }
        }
        self.step += 1;
        Ok(StepStats {
            lr,
            grad_norm: norm,
            step: self.step,
        })
    }
}
