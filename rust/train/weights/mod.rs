//! Base-model weights: GGUF reading, ggml dequantization, compact frozen storage, and GGUF writing
//! (F32 rewrite of a model, random-weight models of real architectures).

pub(crate) mod ggml;
mod model;
mod random;
mod tensor;
mod writer;

pub use ggml::{GgmlType, GgufFile, GgufValue};
pub use model::{Arch, FfnAct, GgufModel, HyperParams, LayerWeights};
pub use random::{write_random_gguf, RandomModelSpec};
pub use tensor::QTensor;
pub use writer::dequantize_gguf_to_f32;
