//! Rewriting GGUF files (all tensors dequantized to F32).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::ggml::{dequantize, GgmlType, GgufBuilder, GgufFile};
use crate::train::error::{Result, TrainError};

/// Writes a copy of the GGUF at `src` to `dst` with every tensor dequantized to F32 (with ggml's
/// own routines). Metadata is copied unchanged. Fails on tensor types ggml cannot dequantize.
pub fn dequantize_gguf_to_f32(src: &Path, dst: &Path) -> Result<()> {
    let g = GgufFile::open(src)?;
    let infos = g.tensors()?;
    let mut b = GgufBuilder::new(infos.len())?;
    b.copy_kv_from(&g);
    for t in &infos {
        if !t.ty.is_supported() {
            return Err(TrainError::UnsupportedTensorType {
                tensor: t.name.clone(),
                type_name: t.ty.name(),
            });
        }
        b.add_tensor(&t.name, GgmlType::F32, &t.ne)?;
    }
    let mut f = File::open(src).map_err(|e| TrainError::io(src, e))?;
    let mut raw = Vec::new();
    let mut vals = Vec::new();
    b.write(dst, |i, _name, out| {
        let t = &infos[i];
        raw.resize(t.size, 0);
        f.seek(SeekFrom::Start(t.file_offset))
            .map_err(|e| TrainError::io(src, e))?;
        f.read_exact(&mut raw).map_err(|e| TrainError::io(src, e))?;
        vals.resize(t.n_elements(), 0f32);
        dequantize(t.ty, &raw, &mut vals)?;
        out.extend(vals.iter().flat_map(|v| v.to_le_bytes()));
        Ok(())
    })
}
