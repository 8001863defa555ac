//! `fmr_cancel_flag`: a flag any thread may set to stop a running operation.

use super::boundary::guard_value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cancellation flag. Thread-safe: `fmr_cancel_flag_set`/`_reset`/`_is_set` may be called
/// from any thread while an operation that uses the flag runs.
pub struct fmr_cancel_flag {
    pub(crate) flag: Arc<AtomicBool>,
}

/// Creates a cleared flag. Release with `fmr_cancel_flag_free`.
#[no_mangle]
pub extern "C" fn fmr_cancel_flag_new() -> *mut fmr_cancel_flag {
    guard_value(std::ptr::null_mut(), || {
        Box::into_raw(Box::new(fmr_cancel_flag {
            flag: Arc::new(AtomicBool::new(false)),
        }))
    })
}

/// Requests cancellation. NULL is a no-op.
///
/// # Safety
/// `flag` is NULL or a live flag.
#[no_mangle]
pub unsafe extern "C" fn fmr_cancel_flag_set(flag: *const fmr_cancel_flag) {
    // SAFETY: NULL or live per the contract.
    if let Some(f) = unsafe { flag.as_ref() } {
        f.flag.store(true, Ordering::SeqCst);
    }
}

/// Clears the flag so it can be reused. NULL is a no-op.
///
/// # Safety
/// `flag` is NULL or a live flag.
#[no_mangle]
pub unsafe extern "C" fn fmr_cancel_flag_reset(flag: *const fmr_cancel_flag) {
    // SAFETY: NULL or live per the contract.
    if let Some(f) = unsafe { flag.as_ref() } {
        f.flag.store(false, Ordering::SeqCst);
    }
}

/// True when the flag is set (false for NULL).
///
/// # Safety
/// `flag` is NULL or a live flag.
#[no_mangle]
pub unsafe extern "C" fn fmr_cancel_flag_is_set(flag: *const fmr_cancel_flag) -> bool {
    // SAFETY: NULL or live per the contract.
    unsafe { flag.as_ref() }.is_some_and(|f| f.flag.load(Ordering::SeqCst))
}

/// Releases a flag. NULL is a no-op. Operations still running with it keep their own reference.
///
/// # Safety
/// `flag` is NULL or a live flag, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn fmr_cancel_flag_free(flag: *mut fmr_cancel_flag) {
    if !flag.is_null() {
        // SAFETY: came from Box::into_raw in fmr_cancel_flag_new; freed once.
        drop(unsafe { Box::from_raw(flag) });
    }
}
