//! The llama.cpp engine: model loading, tokenization, chat templates, contexts with batched
//! decoding, per-sequence sampler chains and LoRA adapters.
//!
//! All `unsafe` code that talks to llama.cpp lives in this folder. Everything above it sees safe
//! types: [`Model`] (shared, thread-safe), [`Context`] (one thread at a time), [`Batch`] and
//! [`LoraAdapter`]. Sampling happens above, on the logits rows (`generate::sampling`).

mod backend;
mod batch;
mod context;
mod devices;
mod lora;
mod model;
mod placement;
mod preflight;

pub use backend::{init_backend, system_info};
pub use batch::Batch;
pub use context::{Context, ContextParams};
pub use devices::{cpu_variant, devices, gpus, CpuVariant, DeviceInfo, DeviceKind};
pub use lora::LoraAdapter;
pub use model::{ChatMessage, Model, ModelParams, Token};
pub use placement::SplitMode;
