//! CPU kernels: a multithreaded GEMM over `matrixmultiply` and element-wise ops with backward.
//!
//! A CUDA backend would provide the same operations with device buffers. Public: the GEMM
//! (for benchmarks of the machine's peak); the other kernels are internal.

pub(crate) mod actquant;
pub(crate) mod attention;
pub(crate) mod gemm;
pub(crate) mod ops;
pub(crate) mod rope;

pub use gemm::{gemm, Mat, MatMut};
