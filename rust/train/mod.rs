//! The LoRA trainer core: GGUF weights, transformer blocks with layer-wise backward, LoRA,
//! GRPO/SFT losses, AdamW and checkpoints. It knows nothing about generation or rollouts.
//!
//! One GRPO update, end to end:
//!
//! ```no_run
//! use std::sync::Arc;
//! use fmr::train::{lora::*, loss::*, model::Transformer, optim::*, weights::GgufModel};
//!
//! # fn main() -> Result<(), fmr::train::TrainError> {
//! let model = Arc::new(GgufModel::open("model.gguf")?);
//! let tf = Transformer::new(model.clone(), 2)?;
//! let mut lora = LoraWeights::new(&LoraConfig::default(), &model)?;
//! let mut opt = AdamW::new(AdamWConfig { lr: 4e-6, ..Default::default() }, &lora)?;
//! let batch = GrpoBatch {
//!     seqs: vec![GrpoSequence { prompt: vec![1, 2], completion: vec![3, 4], ..Default::default() }],
//!     advantages: Advantages::Given(vec![1.0]),
//! };
//! let mut grads = lora.zeros_like();
//! let stats = grpo_loss_and_grad(&tf, &lora, &batch, &GrpoConfig::default(), &mut grads)?;
//! opt.step(&mut lora, &grads, 1.0)?;
//! println!("loss {}", stats.loss);
//! # Ok(())
//! # }
//! ```
//!
//! Layout: `weights` (GGUF reading, ggml dequantization, GGUF writing), `backend` (the compute
//! seam), `cpu` (host kernels), `cuda` (GPU backend, feature `cuda-train`), `model` (blocks,
//! forward/backward, written once over the seam), `lora`, `loss`, `optim`, `checkpoint`,
//! `atomic` (crash-safe file replacement), `rng`, `error`. Unsafe code lives only in
//! `weights::ggml` (FFI), `cpu::gemm` and `cuda`.

pub(crate) mod atomic;
pub(crate) mod backend;
pub mod checkpoint;
pub mod cpu;
#[cfg(feature = "cuda-train")]
pub mod cuda;
mod device;
mod error;
pub mod lora;
pub mod loss;
pub mod model;
pub mod optim;
pub mod rng;
pub mod weights;

pub use device::Device;
pub use error::{Result, TrainError};

#[cfg(test)]
pub(crate) mod tests;
