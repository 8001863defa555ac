//! The trainer on one NVIDIA GPU (feature `cuda-train`): the same model code as the CPU
//! ([`crate::train::model`]) over a CUDA backend built with cudarc.
//!
//! - Base weights are uploaded once in their GGUF types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K,
//!   Q5_K, Q6_K, F16, BF16, F32) and expanded one block at a time, by NVRTC kernels that decode exactly
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
use crate::train::loss::{GrpoConfig, GrpoStats, LossType};
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
    /// Tokens whose MLP intermediates (`[tokens, n_ff]`, the largest activations) are held at
    /// a time; 0 = all tokens of a call.
    pub mlp_chunk: usize,
    /// Keep the block inputs saved for the backward pass in bf16 instead of f32 (half their
    /// memory; the backward pass then recomputes each block from a rounded input).
    pub bf16_checkpoints: bool,
}

impl Default for CudaOptions {
    fn default() -> Self {
        CudaOptions {
            device: 0,
            precision: Precision::Bf16,
            vocab_chunk: 16_384,
            row_chunk: 4096,
            attn_budget_bytes: 512 << 20,
            mlp_chunk: 4096,
            bf16_checkpoints: false,
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
                mlp_chunk: opts.mlp_chunk,
                bf16_checkpoints: opts.bf16_checkpoints,
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

    /// Diagnostics: expands every frozen matrix of the model on the GPU to f32 and compares it
    /// with the host's ggml dequantization. Returns `(largest |difference|, values compared)`;
    /// the kernels decode exactly as ggml, so the difference is 0.
    pub fn dequant_max_error(&self) -> Result<(f32, usize)> {
        let be = &self.be;
        let m = &*be.model;
        let mut pairs: Vec<(&backend::DevTensor, &crate::train::weights::QTensor)> = Vec::new();
        for (dl, lw) in be.dev.layers.iter().zip(&m.layers) {
            for (i, t) in crate::train::lora::LoraTarget::ALL.into_iter().enumerate() {
                pairs.push((&dl.w[i], crate::train::cpu::backend::layer_weight(lw, t)));
            }
        }
        pairs.push((&be.dev.tok_embd, &m.tok_embd));
        if let (Some(d), Some(h)) = (&be.dev.output, &m.output) {
            pairs.push((d, h));
        }
        let (mut worst, mut n) = (0f32, 0usize);
        let mut buf = DBuf::default();
        for (d, h) in pairs {
            let host = h.to_f32()?;
            be.gpu.resize(&mut buf, host.len())?;
            be.dequant_f32_into(d, &buf)?;
            let dev = be.to_host(&buf)?;
            for (a, b) in dev.iter().zip(&host) {
                let e = (a - b).abs();
                if e.is_nan() || e > worst {
                    worst = if e.is_nan() { f32::INFINITY } else { e };
                }
            }
            n += host.len();
        }
        Ok((worst, n))
    }

    /// The GRPO loss and ∂loss/∂logp computed by the `grpo_token` kernel, with the arguments
    /// and results of the host's [`crate::train::loss::grpo_loss_from_logprobs`] (which the
    /// training path uses: the log-probs are a few floats per token, so the loss runs on the
    /// host either way). For checking the kernel against the host.
    pub fn grpo_loss_on_device(
        &self,
        logp: &[Vec<f32>],
        old: Option<&[Vec<f32>]>,
        refp: Option<&[Vec<f32>]>,
        adv: &[f32],
        mask: &[usize],
        cfg: &GrpoConfig,
    ) -> Result<(GrpoStats, Vec<Vec<f32>>)> {
        let n = logp.len();
        if adv.len() != n || mask.len() != n {
            return Err(TrainError::shape(
                "advantages/masks",
                n,
                (adv.len(), mask.len()),
            ));
        }
        let total: usize = mask.iter().sum();
        let max_len = cfg
            .max_completion_length
            .unwrap_or_else(|| logp.iter().map(Vec::len).max().unwrap_or(1))
            .max(1);
        let (mut a_tok, mut norm_tok, mut m_tok) = (Vec::new(), Vec::new(), Vec::<u8>::new());
        for (i, lp) in logp.iter().enumerate() {
            if mask[i] > lp.len() {
                return Err(TrainError::shape("loss mask", lp.len(), mask[i]));
            }
            let norm = match cfg.loss_type {
                LossType::Grpo => 1.0 / (n as f64 * mask[i].max(1) as f64),
                LossType::Dapo => 1.0 / total.max(1) as f64,
                LossType::DrGrpo => 1.0 / (n as f64 * max_len as f64),
            };
            for t in 0..lp.len() {
                a_tok.push(adv[i]);
                norm_tok.push(norm as f32);
                m_tok.push((t < mask[i]) as u8);
            }
        }
        let flat = |v: &[Vec<f32>]| v.iter().flatten().copied().collect::<Vec<f32>>();
        let nt = a_tok.len();
        if nt == 0 {
            return Err(TrainError::config("no tokens"));
        }
        let g = &self.be.gpu;
        let lp_d = g.upload(&flat(logp))?;
        let old_d = old.map(|o| g.upload(&flat(o))).transpose()?;
        let ref_d = refp.map(|r| g.upload(&flat(r))).transpose()?;
        for (name, v) in [("old", old), ("reference", refp)] {
            if let Some(v) = v {
                if flat(v).len() != nt {
                    return Err(TrainError::shape(
                        format!("{name} log-probs"),
                        nt,
                        flat(v).len(),
                    ));
                }
            }
        }
        let (adv_d, norm_d, mask_d) = (g.upload(&a_tok)?, g.upload(&norm_tok)?, g.upload(&m_tok)?);
        let sums = g.zeros::<f64>(2)?;
        let clipped = g.zeros::<u32>(1)?;
        let dl = g.zeros::<f32>(nt)?;
        let opt_ptr =
            |s: &Option<cudarc::driver::CudaSlice<f32>>| s.as_ref().map_or(0, |s| g.ptr(s));
        let eh = cfg.epsilon_high.unwrap_or(cfg.epsilon);
        use device::Arg;
        g.launch_n(
            "grpo_token",
            nt,
            &[
                Arg::P(g.ptr(&lp_d)),
                Arg::P(opt_ptr(&old_d)),
                Arg::P(opt_ptr(&ref_d)),
                Arg::P(g.ptr(&adv_d)),
                Arg::P(g.ptr(&norm_d)),
                Arg::P(g.ptr(&mask_d)),
                Arg::I(nt as i32),
                Arg::F(1.0 - cfg.epsilon),
                Arg::F(1.0 + eh),
                Arg::F(cfg.beta),
                Arg::P(g.ptr(&sums)),
                Arg::P(g.ptr(&sums) + 8),
                Arg::P(g.ptr(&clipped)),
                Arg::P(g.ptr(&dl)),
            ],
        )?;
        let s = g.download(&sums, 2)?;
        let c = g.download(&clipped, 1)?[0];
        let d = g.download(&dl, nt)?;
        let mut grads = Vec::with_capacity(n);
        let mut off = 0;
        for lp in logp {
            grads.push(d[off..off + lp.len()].to_vec());
            off += lp.len();
        }
        let stats = GrpoStats {
            loss: s[0],
            mean_kl: s[1] / total.max(1) as f64,
            clip_ratio: c as f64 / total.max(1) as f64,
            n_tokens: total,
            advantages: adv.to_vec(),
            logprobs: logp.to_vec(),
            ..Default::default()
        };
        Ok((stats, grads))
    }

    /// The SFT loss (mean NLL) and its gradient by the `sft_token` kernel, as
    /// [`crate::train::loss::sft_loss_from_logprobs`] (for checking the kernel).
    pub fn sft_loss_on_device(&self, logp: &[Vec<f32>]) -> Result<(f64, Vec<Vec<f32>>)> {
        let flat: Vec<f32> = logp.iter().flatten().copied().collect();
        if flat.is_empty() {
            return Err(TrainError::config("no tokens"));
        }
        let g = &self.be.gpu;
        let lp = g.upload(&flat)?;
        let sum = g.zeros::<f64>(1)?;
        let dl = g.zeros::<f32>(flat.len())?;
        use device::Arg;
        g.launch_n(
            "sft_token",
            flat.len(),
            &[
                Arg::P(g.ptr(&lp)),
                Arg::I(flat.len() as i32),
                Arg::P(g.ptr(&sum)),
                Arg::P(g.ptr(&dl)),
            ],
        )?;
        let loss = g.download(&sum, 1)?[0];
        let d = g.download(&dl, flat.len())?;
        let mut out = Vec::new();
        let mut off = 0;
        for v in logp {
            out.push(d[off..off + v.len()].to_vec());
            off += v.len();
        }
        Ok((loss, out))
    }

    /// Bytes held by the reusable buffers (activations, checkpoints, scratch).
    pub fn workspace_bytes(&self) -> usize {
        let ws = self.lock();
        let be = &self.be;
        [&ws.cur, &ws.nxt, &ws.dh, &ws.out, &ws.xf]
            .iter()
            .map(|b| be.bytes(b))
            .sum::<usize>()
            + be.ckpt_bytes(&ws.hs)
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

    fn forward_backward_scored<F>(
        &self,
        lora: &DeviceLora,
        seqs: &[SeqRef<'_>],
        want_entropy: bool,
        loss: F,
        grads: &mut DeviceLora,
    ) -> Result<ForwardBackward>
    where
        F: FnOnce(&[Vec<f32>], &[Vec<f32>]) -> Result<(f64, Vec<Vec<f32>>)> + Send,
    {
        self.check(Some(lora))?;
        lora.check_same_shape(grads)?;
        let lay = Layout::new(seqs, self.be.model.hp.n_vocab)?;
        let mut ws = self.lock();
        let out = run::forward_backward(&self.be, &mut ws, lora, &lay, want_entropy, loss, grads)?;
        let memory = MemoryReport {
            base_weights: self.be.dev.bytes,
            lora: (lora.total + grads.total) * 4,
            ..out.memory
        };
        Ok(ForwardBackward {
            loss: out.loss,
            logprobs: out.logprobs,
            entropies: out.entropies,
            memory,
        })
    }
}

#[cfg(test)]
mod tests;
