//! Names of the files a run writes inside its `out_dir`.

/// The latest checkpoint (atomic; a resumed run continues from it).
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// The final adapter in PEFT's format (a folder).
pub const ADAPTER_DIR: &str = "adapter";
/// The final adapter as a GGUF LoRA for llama.cpp.
pub const ADAPTER_GGUF: &str = "adapter.gguf";
/// Folder for the per-step checkpoints `keep_checkpoints` asks for.
pub const STEP_CHECKPOINT_DIR: &str = "checkpoints";
/// The training chart (only when the configuration asks for one).
pub const CHART_FILE: &str = "chart.png";
/// Every scored GRPO completion, one JSON line each.
pub const ROLLOUTS_FILE: &str = "rollouts.jsonl";
