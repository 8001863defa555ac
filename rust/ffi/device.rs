//! Compute devices and the CPU variant: what ggml's backend registry lists.

use super::boundary::{guard, guard_value, non_null};
use super::error::fmr_error;
use super::growable::{out_size, write_out, Growable};
use crate::engine::{cpu_variant, devices};
use crate::error::{Error, ErrorCode};
use std::ffi::{c_char, CString};
use std::sync::OnceLock;

/// Kind of a device (`fmr_device_info.kind`). Fixed values, never reused.
pub type fmr_device_kind = u32;
/// The host CPU.
pub const FMR_DEVICE_CPU: fmr_device_kind = 1;
/// A discrete GPU.
pub const FMR_DEVICE_GPU: fmr_device_kind = 2;
/// An integrated GPU.
pub const FMR_DEVICE_INTEGRATED_GPU: fmr_device_kind = 3;
/// An accelerator that works beside the CPU.
pub const FMR_DEVICE_ACCELERATOR: fmr_device_kind = 4;
/// Any other device.
pub const FMR_DEVICE_OTHER: fmr_device_kind = 5;

/// One device, written by `fmr_device_get` (set `struct_size` first). The strings are owned by
/// the library and live until the process ends.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct fmr_device_info {
    /// Size of this struct in the caller's header.
    pub struct_size: u32,
    /// `FMR_DEVICE_*`.
    pub kind: fmr_device_kind,
    /// Total and free memory in bytes, as the backend reports them now.
    pub memory_total: u64,
    pub memory_free: u64,
    /// ggml's device name (`CPU`, `CUDA0`, …), NUL-terminated.
    pub name: *const c_char,
    /// A description (the CPU's or GPU's product name), NUL-terminated.
    pub description: *const c_char,
    /// The backend that provides it (`CPU`, `CUDA`, …), NUL-terminated.
    pub backend: *const c_char,
}

// SAFETY: repr(C), struct_size first, plain data.
unsafe impl Growable for fmr_device_info {
    const NAME: &'static str = "fmr_device_info";
    const MIN_SIZE: usize = std::mem::size_of::<fmr_device_info>();
    const INIT: &'static str = "set struct_size = sizeof(fmr_device_info)";
}

/// Names of every device, interned once (the device list does not change once the backends
/// are loaded).
fn names() -> &'static [[CString; 3]] {
    static NAMES: OnceLock<Vec<[CString; 3]>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let c = |s: &str| CString::new(s.replace('\0', "")).unwrap_or_default();
        devices()
            .iter()
            .map(|d| [c(&d.name), c(&d.description), c(&d.backend)])
            .collect()
    })
}

/// Number of compute devices (the CPU and, when the CUDA backend module is loaded, each GPU).
/// Loads the backends on first use. Thread-safe.
#[no_mangle]
pub extern "C" fn fmr_device_count() -> usize {
    guard_value(0, || names().len())
}

/// Writes device `index` (below `fmr_device_count()`) to `*info`; memory figures are read now.
/// Thread-safe.
///
/// # Safety
/// `info` is writable for its `struct_size`.
#[no_mangle]
pub unsafe extern "C" fn fmr_device_get(
    index: usize,
    info: *mut fmr_device_info,
) -> *mut fmr_error {
    guard(|| {
        non_null(info, "info")?;
        // SAFETY: the caller's struct per the contract.
        let size = unsafe { out_size(info) }?;
        let all = devices();
        let (d, n) = match (all.get(index), names().get(index)) {
            (Some(d), Some(n)) => (d, n),
            _ => {
                return Err(Error::new(
                    ErrorCode::OutOfRange,
                    format!("device {index} of {}", names().len()),
                ))
            }
        };
        let value = fmr_device_info {
            struct_size: 0,
            kind: d.kind as u32,
            memory_total: d.memory_total,
            memory_free: d.memory_free,
            name: n[0].as_ptr(),
            description: n[1].as_ptr(),
            backend: n[2].as_ptr(),
        };
        // SAFETY: writable for size bytes per the contract.
        unsafe { write_out(info, size, value) };
        Ok(())
    })
}

/// The CPU backend in use: its variant's library file (`libggml-cpu-haswell.so`, or `built-in`)
/// and, after a tab, the instruction-set features it was built for, comma-separated
/// (`AVX,AVX2,FMA,…`). A NUL-terminated string owned by the library for the whole process.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn fmr_cpu_variant() -> *const c_char {
    static TEXT: OnceLock<CString> = OnceLock::new();
    guard_value(std::ptr::null(), || {
        TEXT.get_or_init(|| {
            let v = cpu_variant();
            CString::new(format!("{}\t{}", v.library, v.features.join(","))).unwrap_or_default()
        })
        .as_ptr()
    })
}
