//! The trainer on one NVIDIA GPU (feature `cuda-train`): the same model code as the CPU
//! ([`crate::train::model`]) over a CUDA backend built with cudarc.
//!
//! - Base weights are uploaded once in their GGUF types (Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K,
//!   F16, BF16, F32) and expanded one block at a time, by NVRTC kernels that decode exactly
//!   as ggml does, to bf16 ([`Precision::Bf16`]) or f32 ([`Precision::F32`]) for cuBLAS
//!   GEMMs with f32 accumulation. The output projection is expanded in vocabulary chunks.
//! - LoRA A/B ([`DeviceLora`]), their gradients and the AdamW moments ([`DeviceAdamW`]) are f32
//!   arrays on the GPU.
//! - Attention runs per sequence over chunks of query rows (scores of one chunk for every head
//!   at a time, sized by [`CudaOptions::attn_budget_bytes`]), never all heads' `S × S` scores.
//! - Libraries are loaded at run time: a machine without the driver, cuBLAS or NVRTC gets
//!   [`TrainError::DeviceUnavailable`] from [`CudaTransformer::new`], never a panic.
//!
//! Thread-safety: [`CudaTransformer`] is `Send + Sync`; calls are serialised on its one stream.

mod backend;
mod device;
mod lora;

use std::sync::{Arc, Mutex};

pub use device::{
    compile_kernels, nvrtc_available, preload_cuda_libraries, DBuf, KERNEL_NAMES, KERNEL_SOURCE,
    LIB_DIR_ENV,
};
pub use lora::{DeviceAdamW, DeviceLora};

use backend::{CudaBackend, DevModel, Scratch};
use device::{guarded, Gpu};
use lora::{adamw_to_device, flatten, unflatten};

use crate::train::backend::Backend;
use crate::train::error::{Result, TrainError};
use crate::train::lora::LoraWeights;
use crate::train::model::layout::Layout;
use crate::train::model::run::{self, Workspace};
use crate::train::model::{ForwardBackward, LogprobsArgmax, LoraModel, MemoryReport, SeqRef};
use crate::train::optim::{AdamW, StepStats};
use crate::train::weights::GgufModel;

/// Number format of the products with frozen weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// Weights expanded to bf16, activations rounded to bf16 for the products, f32
    /// accumulation; attention in TF32. The training setting.
    #[default]
    Bf16,
    /// Everything in f32 (reference checks against the CPU backend).
    F32,
}

/// Settings of the CUDA trainer.
#[derive(Clone, Debug)]
pub struct CudaOptions {
    /// CUDA device ordinal.
    pub device: usize,
    pub precision: Precision,
    /// Rows of the output projection expanded at a time.
    pub vocab_chunk: usize,
    /// Scored positions projected onto a vocabulary chunk at a time.
    pub row_chunk: usize,
    /// Bytes of attention probabilities held at a time (as many again for their gradients).
    pub attn_budget_bytes: usize,
}

impl Default for CudaOptions {
    fn default() -> Self {
        CudaOptions {
            device: 0,
            precision: Precision::Bf16,
            vocab_chunk: 16_384,
            row_chunk: 4096,
            attn_budget_bytes: 512 << 20,
        }
    }
}

/// The transformer on a GPU: the counterpart of [`crate::train::model::Transformer`].
pub struct CudaTransformer {
    be: CudaBackend,
    ws: Mutex<Workspace<CudaBackend>>,
}

impl CudaTransformer {
    /// Opens the GPU, compiles the kernels and uploads `model`'s weights.
    pub fn new(model: Arc<GgufModel>, opts: &CudaOptions) -> Result<CudaTransformer> {
        if opts.vocab_chunk == 0 || opts.row_chunk == 0 || opts.attn_budget_bytes == 0 {
            return Err(TrainError::config("CUDA chunk sizes must be positive"));
        }
        let gpu = Gpu::new(opts.device)?;
        let dev = guarded("CUDA upload", || DevModel::upload(&gpu, &model))?;
        Ok(CudaTransformer {
            be: CudaBackend {
                gpu,
                model,
                dev,
                precision: opts.precision,
                vocab_chunk: opts.vocab_chunk,
                row_chunk: opts.row_chunk,
                attn_budget: opts.attn_budget_bytes,
                scratch: Mutex::new(Scratch::default()),
            },
            ws: Mutex::new(Workspace::default()),
        })
    }

    /// The base model.
    pub fn model(&self) -> &GgufModel {
        &self.be.model
    }

    /// The GPU's name.
    pub fn device_name(&self) -> &str {
        &self.be.gpu.name
    }

    /// Free and total device memory, in bytes.
    pub fn mem_info(&self) -> Result<(usize, usize)> {
        self.be.gpu.mem_info()
    }

    /// Bytes of the uploaded base weights.
    pub fn weight_bytes(&self) -> usize {
        self.be.dev.bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Workspace<CudaBackend>> {
        self.ws.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self, lora: Option<&DeviceLora>) -> Result<()> {
        if let Some(l) = lora {
            let hp = &self.be.model.hp;
            let dims = crate::train::lora::LoraTarget::ALL.map(|t| t.dims(hp));
            if l.n_layer != hp.n_layer || l.dims != dims {
                return Err(TrainError::shape(
                    "LoRA adapter vs model",
                    (hp.n_layer, dims),
                    (l.n_layer, l.dims),
                ));
            }
        }
        Ok(())
    }

    /// Copies a host adapter (or gradient set) to the GPU.
    pub fn upload_lora(&self, w: &LoraWeights) -> Result<DeviceLora> {
        w.check_model(&self.be.model.hp)?;
        let data = self.be.gpu.upload(&flatten(w))?;
        Ok(DeviceLora::layout_of(w, data))
    }

    /// Overwrites a device adapter with a host one of the same shape.
    pub fn write_lora(&self, w: &LoraWeights, dst: &mut DeviceLora) -> Result<()> {
        if w.n_params() != dst.total {
            return Err(TrainError::shape("LoRA values", dst.total, w.n_params()));
        }
        self.be.gpu.write(&flatten(w), &mut dst.data)
    }

    /// Copies a device adapter into a host one of the same shape.
    pub fn download_lora(&self, src: &DeviceLora, dst: &mut LoraWeights) -> Result<()> {
        let flat = self.be.gpu.download(&src.data, src.total)?;
        unflatten(&flat, dst)
    }

    /// A zero-filled device tensor set shaped like `w` (gradients).
    pub fn zeros_like(&self, w: &DeviceLora) -> Result<DeviceLora> {
        let mut z = DeviceLora {
            config: w.config.clone(),
            n_layer: w.n_layer,
            data: self.be.gpu.zeros::<f32>(w.total)?,
            spans: w.spans.clone(),
            slot: w.slot.clone(),
            dims: w.dims,
            total: w.total,
        };
        self.zero_lora(&mut z)?;
        Ok(z)
    }

    /// Sets every value to 0.
    pub fn zero_lora(&self, w: &mut DeviceLora) -> Result<()> {
        let p = self.be.gpu.ptr(&w.data);
        self.be.gpu.launch_n(
            "fill_f32",
            w.total,
            &[
                device::Arg::P(p),
                device::Arg::L(w.total as i64),
                device::Arg::F(0.0),
            ],
        )
    }

    /// The host optimizer's state on the GPU.
    pub fn upload_adamw(&self, opt: &AdamW) -> Result<DeviceAdamW> {
        adamw_to_device(&self.be.gpu, opt)
    }

    /// Copies the device optimizer state (step count and moments) into `dst`.
    pub fn download_adamw(&self, src: &DeviceAdamW, dst: &mut AdamW) -> Result<()> {
        dst.step = src.step;
        self.download_lora(&src.m, &mut dst.m)?;
        self.download_lora(&src.v, &mut dst.v)
    }

    /// One AdamW update on the GPU (see [`AdamW::step`]).
    pub fn adamw_step(
        &self,
        opt: &mut DeviceAdamW,
        params: &mut DeviceLora,
        grads: &DeviceLora,
        grad_scale: f32,
    ) -> Result<StepStats> {
        opt.step(&self.be.gpu, params, grads, grad_scale)
    }

    /// Waits for queued GPU work (for timing) and reports asynchronous errors.
    pub fn synchronize(&self) -> Result<()> {
        self.be.gpu.sync()
    }

    /// Per-token log-probs (nats), with the most probable token at each scored position when
    /// `want_argmax`.
    pub fn logprobs_and_argmax(
        &self,
        lora: Option<&DeviceLora>,
        seqs: &[SeqRef<'_>],
    ) -> Result<LogprobsArgmax> {
        self.check(lora)?;
        let lay = Layout::new(seqs, self.be.model.hp.n_vocab)?;
        let mut ws = self.lock();
        let (lp, arg) = run::forward(&self.be, &mut ws, lora, &lay, true, |_, _| Ok(()))?;
        Ok((lay.split(&lp), lay.split(&arg)))
    }

    /// Diagnostics: every block's output (see `Transformer::layer_outputs`).
    pub fn layer_outputs(
        &self,
        lora: Option<&DeviceLora>,
        seqs: &[SeqRef<'_>],
    ) -> Result<Vec<Vec<f32>>> {
        self.check(lora)?;
        let lay = Layout::new(seqs, self.be.model.hp.n_vocab)?;
        let mut ws = self.lock();
        let mut outs = Vec::new();
        let be = &self.be;
        run::forward(be, &mut ws, lora, &lay, false, |_, o| {
            outs.push(be.to_host(o)?);
            Ok(())
        })?;
        Ok(outs)
    }

    /// Bytes held by the reusable buffers (activations, checkpoints, scratch).
    pub fn workspace_bytes(&self) -> usize {
        let ws = self.lock();
        let be = &self.be;
        ws.hs.iter().map(|h| be.bytes(h)).sum::<usize>()
            + ws.acts.bytes(be)
            + ws.grads.bytes(be)
            + be.layer_bytes(&ws.layer)
    }
}

impl LoraModel for CudaTransformer {
    type Lora = DeviceLora;

    fn logprobs(&self, lora: Option<&DeviceLora>, seqs: &[SeqRef<'_>]) -> Result<Vec<Vec<f32>>> {
        self.check(lora)?;
        let lay = Layout::new(seqs, self.be.model.hp.n_vocab)?;
        let mut ws = self.lock();
        let (lp, _) = run::forward(&self.be, &mut ws, lora, &lay, false, |_, _| Ok(()))?;
        Ok(lay.split(&lp))
    }

    fn forward_backward<F>(
        &self,
        lora: &DeviceLora,
        seqs: &[SeqRef<'_>],
        loss: F,
        grads: &mut DeviceLora,
    ) -> Result<ForwardBackward>
    where
        F: FnOnce(&[Vec<f32>]) -> Result<(f64, Vec<Vec<f32>>)> + Send,
    {
        self.check(Some(lora))?;
        lora.check_same_shape(grads)?;
        let lay = Layout::new(seqs, self.be.model.hp.n_vocab)?;
        let mut ws = self.lock();
        let out = run::forward_backward(&self.be, &mut ws, lora, &lay, loss, grads)?;
        let memory = MemoryReport {
            base_weights: self.be.dev.bytes,
            lora: (lora.total + grads.total) * 4,
            ..out.memory
        };
        Ok(ForwardBackward {
            loss: out.loss,
            logprobs: out.logprobs,
            memory,
        })
    }
}

#[cfg(test)]
mod tests;
