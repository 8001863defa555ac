//! Adapter file formats: PEFT (safetensors + adapter_config.json) and GGUF LoRA for llama.cpp.

pub mod gguf_lora;
pub mod peft;
