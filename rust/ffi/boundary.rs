//! The panic boundary and argument checks shared by every exported function.

use super::error::fmr_error;
use crate::error::{Error, ErrorCode, Result};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `body`, turning an `Err` into an `fmr_error*` and a panic into `FMR_ERR_PANIC`.
/// Returns NULL on success.
pub(crate) fn guard(body: impl FnOnce() -> Result<()>) -> *mut fmr_error {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(e)) => fmr_error::into_raw(e),
        Err(payload) => fmr_error::into_raw(Error::new(ErrorCode::Panic, panic_message(&payload))),
    }
}

/// Runs an infallible accessor; a panic yields `fallback`.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal panic caught at the C boundary: {what}")
}

/// A NULL check for a required pointer argument.
pub(crate) fn non_null<T>(p: *const T, name: &str) -> Result<()> {
    if p.is_null() {
        Err(Error::invalid(format!("{name} must not be NULL")))
    } else {
        Ok(())
    }
}

/// Checks that a versioned params struct was initialised by its `_default_params()` function.
pub(crate) fn check_struct_size(got: u32, expected: usize, name: &str, init: &str) -> Result<()> {
    if (got as usize) < expected {
        return Err(Error::invalid(format!(
            "{name}.struct_size is {got}, expected {expected}: initialise it with {init}()"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::error::{fmr_error_code, fmr_error_free};

    #[test]
    fn panics_become_errors() {
        let e = guard(|| panic!("boom"));
        assert!(!e.is_null());
        // SAFETY: e is a live error from guard.
        unsafe {
            assert_eq!(fmr_error_code(e), ErrorCode::Panic as u32);
            fmr_error_free(e);
        }
        assert_eq!(guard_value(7, || panic!("x")), 7);
    }
}
