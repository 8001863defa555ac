//! CPU kernels: a multithreaded GEMM over `matrixmultiply` and element-wise ops with backward.
//!
//! A CUDA backend would provide the same operations with device buffers.

pub mod actquant;
pub mod attention;
pub mod gemm;
pub mod ops;
pub mod rope;

pub use gemm::{gemm, Mat, MatMut};
