//! Where a trainer's losses, gradients and optimizer run (`"device"` in the configuration).
//!
//! The host adapter and optimizer state (`Trainer::lora`, `Trainer::opt`) stay the canonical
//! copies: checkpoints, exports and the atomic-step snapshots read them. On the GPU the
//! adapter, its gradients and the AdamW moments live in device memory; after every optimizer
//! step the new adapter and moments are copied back to the host, and whenever the host copies
//! change otherwise (a failed step restored, an adapter loaded) the device copies are marked
//! stale and uploaded again before the next use.

use std::sync::Arc;

use super::trainer::Trainer;
use crate::error::Result;
#[cfg(not(feature = "cuda-train"))]
use crate::error::{Error, ErrorCode};
use crate::train::lora::LoraWeights;
use crate::train::loss::{
    grpo_loss_and_grad, sft_loss_and_grad, GrpoBatch, GrpoConfig, GrpoStats, SftConfig, SftExample,
    SftStats,
};
use crate::train::model::SeqRef;
use crate::train::optim::{AdamW, StepStats};
use crate::train::weights::GgufModel;
use crate::train::Device;

/// The compute device of a trainer and, on a GPU, the device copies of its state.
pub(super) enum Compute {
    Cpu,
    #[cfg(feature = "cuda-train")]
    Cuda(Box<CudaState>),
}

#[cfg(feature = "cuda-train")]
pub(super) struct CudaState {
    tf: crate::train::cuda::CudaTransformer,
    lora: crate::train::cuda::DeviceLora,
    grads: crate::train::cuda::DeviceLora,
    opt: crate::train::cuda::DeviceAdamW,
    /// The frozen adapter the run started from (GRPO's reference), if any.
    init: Option<crate::train::cuda::DeviceLora>,
    /// Whether `lora` and `opt` equal the host copies.
    synced: bool,
}

impl Compute {
    /// Opens `device` for a run over `model` whose state starts as `lora`, `opt` and `init`.
    pub(super) fn open(
        device: Device,
        model: &Arc<GgufModel>,
        lora: &LoraWeights,
        opt: &AdamW,
        init: Option<&LoraWeights>,
    ) -> Result<Compute> {
        match device {
            Device::Cpu => Ok(Compute::Cpu),
            #[cfg(feature = "cuda-train")]
            Device::Cuda => {
                use crate::train::cuda::{CudaOptions, CudaTransformer};
                let tf = CudaTransformer::new(model.clone(), &CudaOptions::default())?;
                let dl = tf.upload_lora(lora)?;
                let grads = tf.zeros_like(&dl)?;
                let dopt = tf.upload_adamw(opt)?;
                let init = init.map(|l| tf.upload_lora(l)).transpose()?;
                Ok(Compute::Cuda(Box::new(CudaState {
                    tf,
                    lora: dl,
                    grads,
                    opt: dopt,
                    init,
                    synced: true,
                })))
            }
            #[cfg(not(feature = "cuda-train"))]
            Device::Cuda => {
                let _ = (model, lora, opt, init);
                Err(Error::new(
                    ErrorCode::Unsupported,
                    "device \"cuda\": this build of fmr lacks the cuda-train feature",
                ))
            }
        }
    }

    /// The device in use.
    pub(super) fn device(&self) -> Device {
        match self {
            Compute::Cpu => Device::Cpu,
            #[cfg(feature = "cuda-train")]
            Compute::Cuda(_) => Device::Cuda,
        }
    }
}

impl Trainer {
    /// The host adapter or optimizer changed outside a device step: upload before next use.
    pub(super) fn device_state_stale(&mut self) {
        #[cfg(feature = "cuda-train")]
        if let Compute::Cuda(st) = &mut self.compute {
            st.synced = false;
        }
    }

    #[cfg(feature = "cuda-train")]
    fn device_sync(st: &mut CudaState, lora: &LoraWeights, opt: &AdamW) -> Result<()> {
        if !st.synced {
            st.tf.write_lora(lora, &mut st.lora)?;
            st.opt = st.tf.upload_adamw(opt)?;
            st.synced = true;
        }
        Ok(())
    }

    /// Zeroes the gradient accumulators.
    pub(super) fn zero_grads(&mut self) -> Result<()> {
        match &mut self.compute {
            Compute::Cpu => {
                self.grads.zero();
                Ok(())
            }
            #[cfg(feature = "cuda-train")]
            Compute::Cuda(st) => Ok(st.tf.zero_lora(&mut st.grads)?),
        }
    }

    /// Adds the gradient of one GRPO micro-batch under the current adapter.
    pub(super) fn grpo_micro_batch(
        &mut self,
        batch: &GrpoBatch,
        cfg: &GrpoConfig,
    ) -> Result<GrpoStats> {
        match &mut self.compute {
            Compute::Cpu => Ok(grpo_loss_and_grad(
                &self.tf,
                &self.lora,
                batch,
                cfg,
                &mut self.grads,
            )?),
            #[cfg(feature = "cuda-train")]
            Compute::Cuda(st) => {
                Self::device_sync(st, &self.lora, &self.opt)?;
                Ok(grpo_loss_and_grad(
                    &st.tf,
                    &st.lora,
                    batch,
                    cfg,
                    &mut st.grads,
                )?)
            }
        }
    }

    /// Adds the gradient of one SFT micro-batch under the current adapter.
    pub(super) fn sft_micro_batch(
        &mut self,
        examples: &[SftExample],
        cfg: &SftConfig,
    ) -> Result<SftStats> {
        match &mut self.compute {
            Compute::Cpu => Ok(sft_loss_and_grad(
                &self.tf,
                &self.lora,
                examples,
                cfg,
                &mut self.grads,
            )?),
            #[cfg(feature = "cuda-train")]
            Compute::Cuda(st) => {
                Self::device_sync(st, &self.lora, &self.opt)?;
                Ok(sft_loss_and_grad(
                    &st.tf,
                    &st.lora,
                    examples,
                    cfg,
                    &mut st.grads,
                )?)
            }
        }
    }

    /// One AdamW step from the accumulated gradients times `grad_scale`; the host adapter and
    /// optimizer state are updated (copied back from the GPU there).
    pub(super) fn optimizer_step(&mut self, grad_scale: f32) -> Result<StepStats> {
        match &mut self.compute {
            Compute::Cpu => Ok(self.opt.step(&mut self.lora, &self.grads, grad_scale)?),
            #[cfg(feature = "cuda-train")]
            Compute::Cuda(st) => {
                Self::device_sync(st, &self.lora, &self.opt)?;
                let stats = st
                    .tf
                    .adamw_step(&mut st.opt, &mut st.lora, &st.grads, grad_scale);
                let stats = match stats {
                    Ok(s) => s,
                    Err(e) => {
                        // A rejected step leaves the device state as it was; still resync.
                        st.synced = false;
                        return Err(e.into());
                    }
                };
                let copied = st
                    .tf
                    .download_lora(&st.lora, &mut self.lora)
                    .and_then(|()| st.tf.download_adamw(&st.opt, &mut self.opt));
                if let Err(e) = copied {
                    st.synced = false;
                    return Err(e.into());
                }
                Ok(stats)
            }
        }
    }

    /// Log-probs of `seqs` under the frozen starting adapter (`init = true`, which must
    /// exist) or under the current adapter.
    pub(super) fn adapter_logprobs(
        &mut self,
        init: bool,
        seqs: &[SeqRef<'_>],
    ) -> Result<Vec<Vec<f32>>> {
        match &mut self.compute {
            Compute::Cpu => {
                let l = if init {
                    self.init_lora.as_ref()
                } else {
                    Some(&self.lora)
                };
                Ok(self.tf.logprobs(l, seqs)?)
            }
            #[cfg(feature = "cuda-train")]
            Compute::Cuda(st) => {
                use crate::train::model::LoraModel;
                Self::device_sync(st, &self.lora, &self.opt)?;
                let l = if init {
                    st.init.as_ref()
                } else {
                    Some(&st.lora)
                };
                Ok(st.tf.logprobs(l, seqs)?)
            }
        }
    }

    /// Log-probs under the current host adapter, without changing any state (uploads a
    /// temporary copy on a GPU whose copy is stale).
    pub(super) fn current_logprobs(&self, seqs: &[SeqRef<'_>]) -> Result<Vec<Vec<f32>>> {
        match &self.compute {
            Compute::Cpu => Ok(self.tf.logprobs(Some(&self.lora), seqs)?),
            #[cfg(feature = "cuda-train")]
            Compute::Cuda(st) => {
                use crate::train::model::LoraModel;
                if st.synced {
                    Ok(st.tf.logprobs(Some(&st.lora), seqs)?)
                } else {
                    let l = st.tf.upload_lora(&self.lora)?;
                    Ok(st.tf.logprobs(Some(&l), seqs)?)
                }
            }
        }
    }

    /// The device the trainer's forward/backward and optimizer run on.
    pub fn device(&self) -> Device {
        self.compute.device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    /// Without the feature, or without a GPU and its libraries, `"device": "cuda"` is an
    /// `Unsupported` error (never a panic); the CPU always opens.
    #[test]
    fn cuda_without_a_usable_gpu_is_unsupported() {
        let spec = crate::train::weights::RandomModelSpec::tiny(crate::train::weights::Arch::Llama);
        let p = crate::train::tests::support::scratch_dir().join("compute-tiny.gguf");
        crate::train::weights::write_random_gguf(&spec, &p).unwrap();
        let m = Arc::new(GgufModel::open(&p).unwrap());
        let lora = LoraWeights::new(&Default::default(), &m).unwrap();
        let opt = AdamW::new(Default::default(), &lora).unwrap();
        match Compute::open(Device::Cuda, &m, &lora, &opt, None) {
            Err(e) => assert_eq!(e.code(), ErrorCode::Unsupported, "{e}"),
            // Only a GPU machine with the feature gets here (the device checks cover it).
            Ok(c) => assert!(cfg!(feature = "cuda-train") && c.device() == Device::Cuda),
        }
        assert!(Compute::open(Device::Cpu, &m, &lora, &opt, None).is_ok());
    }
}
