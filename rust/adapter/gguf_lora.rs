//! Export of a LoRA adapter as a GGUF file that llama.cpp loads with `llama_adapter_lora_init`.
//!
//! Format: `general.type = "adapter"`, `general.architecture`, `adapter.type = "lora"`,
//! `adapter.lora.alpha`; tensors `blk.N.<stem>.weight.lora_a` (ggml ne `[in, r]`, i.e. A as
//! `[r, in]` row-major) and `.lora_b` (ne `[r, out]`, B as `[out, r]`), F32. llama.cpp scales the
//! update by `alpha / r` (times the user scale), matching PEFT.

use std::path::Path;

use crate::train::atomic::write_atomic;
use crate::train::lora::LoraWeights;
use crate::train::weights::ggml::{GgmlType, GgufBuilder};
use crate::train::weights::Arch;
use crate::train::Result;

/// Writes `lora` (trained against a base model of architecture `arch`) to `path` atomically.
/// B rows are in GGUF row order, which is what llama.cpp applies them to.
pub fn export_gguf_lora(lora: &LoraWeights, arch: Arch, path: &Path) -> Result<()> {
    let entries = lora.entries();
    let r = lora.config.rank;
    let mut b = GgufBuilder::new(entries.len() * 2)?;
    b.set_str("general.architecture", arch.name())?;
    b.set_str("general.type", "adapter")?;
    b.set_str("adapter.type", "lora")?;
    b.set_f32("adapter.lora.alpha", lora.config.alpha)?;
    for &(l, t) in &entries {
        let (din, dout) = lora.dims(t);
        let stem = format!("blk.{l}.{}.weight", t.gguf_name());
        b.add_tensor(&format!("{stem}.lora_a"), GgmlType::F32, &[din, r])?;
        b.add_tensor(&format!("{stem}.lora_b"), GgmlType::F32, &[r, dout])?;
    }
    write_atomic(path, |tmp| {
        b.write(tmp, |i, _name, out| {
            let (l, t) = entries[i / 2];
            if let Some((a, bm)) = lora.pair(l, t) {
                let src = if i % 2 == 0 { a } else { bm };
                out.extend(src.iter().flat_map(|v| v.to_le_bytes()));
            }
            Ok(())
        })
    })
}
