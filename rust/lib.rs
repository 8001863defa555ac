//! fmr — the Fast-Math-R1 recipe as an embeddable library.
//!
//! Layers (dependencies point down): `ffi` (the C ABI) → `generate` (group rollouts with
//! length-aware stopping), `reward` (the paper's rewards) → `engine` (llama.cpp), `answer` (the
//! math verifier, pure); `adapter` (PEFT / GGUF LoRA files) → `train` (the LoRA trainer core,
//! which knows nothing of rollouts). `error` is shared by all.

pub mod adapter;
pub mod answer;
pub mod budget;
pub mod engine;
mod error;
#[doc(hidden)]
pub mod ffi; // the C ABI (include/fmr.h); Rust code uses the modules above
pub mod generate;
pub mod recipe;
pub mod reward;
pub mod train;

pub use error::{Error, ErrorCode, Result};

/// The crate version, as in Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
