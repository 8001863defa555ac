//! A frozen tensor kept in its GGUF storage type and dequantized on demand.

use rayon::prelude::*;

use super::ggml::{dequantize, GgmlType};
use crate::train::error::{Result, TrainError};

/// A 1-D or 2-D frozen tensor stored compactly (its GGUF type).
///
/// Shape follows ggml: `cols` (= `ne[0]`) contiguous elements per row, `rows` (= `ne[1]`) rows.
/// For a linear layer that is `[out = rows, in = cols]` row-major, i.e. PyTorch's layout.
#[derive(Clone, Debug)]
pub struct QTensor {
    pub(crate) name: String,
    pub(crate) ty: GgmlType,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    data: Vec<u8>,
}

impl QTensor {
    /// Wraps raw bytes; checks the byte count against the type and shape.
    pub fn new(
        name: String,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        data: Vec<u8>,
    ) -> Result<Self> {
        if !ty.is_supported() {
            return Err(TrainError::UnsupportedTensorType {
                tensor: name,
                type_name: ty.name(),
            });
        }
        let rb = ty.row_bytes(cols).map_err(|_| {
            TrainError::shape(
                format!("row length of {name}"),
                format!("multiple of {}", ty.block_size().unwrap_or(0)),
                cols,
            )
        })?;
        if data.len() != rb * rows {
            return Err(TrainError::shape(
                format!("bytes of {name}"),
                rb * rows,
                data.len(),
            ));
        }
        Ok(QTensor {
            name,
            ty,
            rows,
            cols,
            data,
        })
    }

    /// Per-block minimums `m` (`[rows, cols / 32]`, row-major) of a Q4_1 tensor, whose blocks
    /// decode as `d·q + m`; `None` for other types. Used to reproduce llama.cpp's Q4_1 × Q8_1
    /// product exactly (see `cpu::actquant`).
    pub fn q4_1_block_mins(&self) -> Option<Vec<f32>> {
        if self.ty != GgmlType::Q4_1 {
            return None;
        }
        // block_q4_1: f16 d, f16 m, 16 bytes of nibbles.
        Some(
            self.data
                .chunks_exact(20)
                .map(|b| super::ggml::f16_to_f32(u16::from_le_bytes([b[2], b[3]])))
                .collect(),
        )
    }

    /// Bytes of storage.
    pub fn nbytes(&self) -> usize {
        self.data.len()
    }

    /// Raw stored bytes.
    pub fn raw(&self) -> &[u8] {
        &self.data
    }

    fn row_bytes(&self) -> usize {
        self.data.len() / self.rows.max(1)
    }

    /// Dequantizes rows `r0..r0 + out.len() / cols` into `out` (row-major f32).
    pub fn dequant_rows(&self, r0: usize, out: &mut [f32]) -> Result<()> {
        let n_rows = out.len() / self.cols.max(1);
        if out.len() != n_rows * self.cols || r0 + n_rows > self.rows {
            return Err(TrainError::shape(
                format!("row range of {}", self.name),
                self.rows,
                r0 + n_rows,
            ));
        }
        let rb = self.row_bytes();
        dequantize(self.ty, &self.data[r0 * rb..(r0 + n_rows) * rb], out)
    }

    /// Dequantizes the whole tensor into `out` (length `rows * cols`), in parallel over rows.
    pub fn dequant_into(&self, out: &mut [f32]) -> Result<()> {
        if out.len() != self.rows * self.cols {
            return Err(TrainError::shape(
                format!("dequant buffer of {}", self.name),
                self.rows * self.cols,
                out.len(),
            ));
        }
        let rb = self.row_bytes();
        let rows_per = 64.max(self.rows / 64);
        out.par_chunks_mut(rows_per * self.cols)
            .zip(self.data.par_chunks(rows_per * rb))
            .try_for_each(|(o, s)| dequantize(self.ty, s, o))
    }

    /// Dequantizes the whole tensor into a new vector.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let mut v = vec![0f32; self.rows * self.cols];
        self.dequant_into(&mut v)?;
        Ok(v)
    }
}
