//! CPU kernels: a multithreaded GEMM over `matrixmultiply` and element-wise ops with backward.
//!
//! `backend` implements the compute seam (`train::backend`) with them. Public: the GEMM
//! (for benchmarks of the machine's peak); the other kernels are internal.

pub(crate) mod actquant;
pub(crate) mod attention;
pub(crate) mod backend;
pub(crate) mod gemm;
pub(crate) mod ops;
pub(crate) mod rope;

pub use gemm::{gemm, Mat, MatMut};
