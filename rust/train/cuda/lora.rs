//! LoRA tensors and AdamW state in device memory: one contiguous `f32` array per set, in the
//! canonical order of [`LoraWeights::params`], so the optimizer, the gradient norm and host
//! copies are single operations.

use cudarc::driver::CudaSlice;

use super::device::{Arg, Gpu};
use crate::train::error::{Result, TrainError};
use crate::train::lora::{LoraConfig, LoraTarget, LoraWeights};
use crate::train::optim::{AdamW, AdamWConfig, StepStats};

/// LoRA parameters (or gradients, or optimizer moments) on the GPU, shaped like a host
/// [`LoraWeights`]. Made by `CudaTransformer::upload_lora`; copied back with
/// `CudaTransformer::download_lora`.
pub struct DeviceLora {
    pub(crate) config: LoraConfig,
    pub(crate) n_layer: usize,
    pub(crate) data: CudaSlice<f32>,
    /// Element offset and length of every tensor (canonical order).
    pub(crate) spans: Vec<(usize, usize)>,
    /// `slot[layer * 7 + target]` = index of A in `spans` (B follows).
    pub(crate) slot: Vec<Option<usize>>,
    pub(crate) dims: [(usize, usize); 7],
    pub(crate) total: usize,
}

impl DeviceLora {
    /// Layout of `host`, with device storage `data` of `total` elements.
    pub(crate) fn layout_of(host: &LoraWeights, data: CudaSlice<f32>) -> DeviceLora {
        let mut spans = Vec::new();
        let mut off = 0;
        for p in host.params() {
            spans.push((off, p.len()));
            off += p.len();
        }
        let n_layer = host.n_layer();
        let mut slot = vec![None; n_layer * 7];
        for (i, (l, t)) in host.entries().into_iter().enumerate() {
            slot[l * 7 + t.index()] = Some(2 * i);
        }
        DeviceLora {
            config: host.config().clone(),
            n_layer,
            data,
            spans,
            slot,
            dims: LoraTarget::ALL.map(|t| host.dims(t)),
            total: off,
        }
    }

    /// The configuration the adapter was made with.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// Total number of scalars.
    pub fn n_params(&self) -> usize {
        self.total
    }

    /// Device addresses of A (`[r, in]`) and B (`[out, r]`) of one layer's target.
    pub(crate) fn pair(&self, gpu: &Gpu, l: usize, t: LoraTarget) -> Option<(u64, u64)> {
        let i = (*self.slot.get(l * 7 + t.index())?)?;
        let base = gpu.ptr(&self.data);
        Some((
            base + 4 * self.spans[i].0 as u64,
            base + 4 * self.spans[i + 1].0 as u64,
        ))
    }

    /// `alpha / rank`.
    pub fn scaling(&self) -> f32 {
        self.config.scaling()
    }

    /// Errors unless `other` has the same tensors.
    pub fn check_same_shape(&self, other: &DeviceLora) -> Result<()> {
        if self.spans != other.spans || self.slot != other.slot {
            return Err(TrainError::shape(
                "device LoRA tensors",
                self.spans.len(),
                other.spans.len(),
            ));
        }
        Ok(())
    }
}

/// AdamW with its moments on the GPU; the arithmetic of the host [`AdamW`] (same clipping,
/// bias correction and update order), one kernel over all tensors.
pub struct DeviceAdamW {
    pub(crate) config: AdamWConfig,
    pub(crate) step: u64,
    pub(crate) m: DeviceLora,
    pub(crate) v: DeviceLora,
    /// One f64 for the squared gradient norm.
    pub(crate) norm_sq: CudaSlice<f64>,
}

impl DeviceAdamW {
    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The configuration.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// One update of `params` from `grads · grad_scale`; non-finite gradients are rejected
    /// with the parameters untouched (see [`AdamW::step`]).
    pub(crate) fn step(
        &mut self,
        gpu: &Gpu,
        params: &mut DeviceLora,
        grads: &DeviceLora,
        grad_scale: f32,
    ) -> Result<StepStats> {
        params.check_same_shape(grads)?;
        params.check_same_shape(&self.m)?;
        let n = params.total;
        gpu.write(&[0f64], &mut self.norm_sq)?;
        gpu.launch_n(
            "sum_squares",
            n,
            &[
                Arg::P(gpu.ptr(&grads.data)),
                Arg::L(n as i64),
                Arg::P(gpu.ptr(&self.norm_sq)),
            ],
        )?;
        let sq = gpu.download(&self.norm_sq, 1)?[0];
        let norm = sq.sqrt() * grad_scale.abs() as f64;
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
        let c = &self.config;
        let lr = c.lr * c.schedule.factor(self.step);
        let t = (self.step + 1) as i32;
        let bc1 = 1.0 - (c.beta1 as f64).powi(t);
        let bc2 = 1.0 - (c.beta2 as f64).powi(t);
        let step_size = (lr as f64 / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        gpu.launch_n(
            "adamw",
            n,
            &[
                Arg::P(gpu.ptr(&params.data)),
                Arg::P(gpu.ptr(&grads.data)),
                Arg::P(gpu.ptr(&self.m.data)),
                Arg::P(gpu.ptr(&self.v.data)),
                Arg::L(n as i64),
                Arg::F(grad_scale * clip),
                Arg::F(c.beta1),
                Arg::F(c.beta2),
                Arg::F(lr),
                Arg::F(c.weight_decay),
                Arg::F(step_size),
                Arg::F(bc2_sqrt),
                Arg::F(c.eps),
            ],
        )?;
        self.step += 1;
        Ok(StepStats {
            lr,
            grad_norm: norm,
            step: self.step,
        })
    }
}

/// Concatenates the tensors of `w` in canonical order.
pub(crate) fn flatten(w: &LoraWeights) -> Vec<f32> {
    let mut v = Vec::with_capacity(w.n_params());
    for p in w.params() {
        v.extend_from_slice(p);
    }
    v
}

/// Splits `flat` back into the tensors of `w`.
pub(crate) fn unflatten(flat: &[f32], w: &mut LoraWeights) -> Result<()> {
    if flat.len() != w.n_params() {
        return Err(TrainError::shape("LoRA values", w.n_params(), flat.len()));
    }
    let mut off = 0;
    for p in w.params_mut() {
        let n = p.len();
        p.copy_from_slice(&flat[off..off + n]);
        off += n;
    }
    Ok(())
}

/// The host optimizer state as device state (moments uploaded).
pub(crate) fn adamw_to_device(gpu: &Gpu, opt: &AdamW) -> Result<DeviceAdamW> {
    let m = DeviceLora::layout_of(&opt.m, gpu.upload(&flatten(&opt.m))?);
    let v = DeviceLora::layout_of(&opt.v, gpu.upload(&flatten(&opt.v))?);
    Ok(DeviceAdamW {
        config: opt.config.clone(),
        step: opt.step,
        m,
        v,
        norm_sq: gpu.zeros::<f64>(1)?,
    })
}
