//! Adapter file formats: PEFT (safetensors + adapter_config.json) and GGUF LoRA for llama.cpp.

pub(crate) mod gguf_lora;
pub(crate) mod peft;

pub use gguf_lora::export_gguf_lora;
pub use peft::{load_peft, peft_module_name, save_peft, PeftConfig, CONFIG_FILE, WEIGHTS_FILE};
