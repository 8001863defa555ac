//! The panic boundary and argument checks shared by every exported function.
//!
//! A panic inside the boundary never reaches the host's streams: the process-wide panic hook
//! (installed once, on the first call into the C ABI) records the message and location of a
//! panic on a thread that is inside the boundary instead of printing it, and `guard` turns it
//! into the error's message. Panics on other threads, or outside the boundary, go to the hook
//! that was installed before (Rust's default prints them).

use super::error::fmr_error;
use crate::error::{Error, ErrorCode, Result};
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe, PanicHookInfo};
use std::sync::{Mutex, MutexGuard, Once, TryLockError};

thread_local! {
    /// How many boundary calls this thread is inside (callbacks can nest them).
    static BOUNDARY_DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The message and location of the last panic caught on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the quiet hook once per process, keeping the previous hook for panics outside the
/// boundary.
fn install_quiet_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if BOUNDARY_DEPTH.with(|d| d.get()) > 0 {
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let text = format!("{}{at}", payload_text(info.payload()));
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `body` with this thread marked as inside the boundary, catching a panic.
fn inside<T>(body: impl FnOnce() -> T) -> std::result::Result<T, String> {
    install_quiet_hook();
    BOUNDARY_DEPTH.with(|d| d.set(d.get() + 1));
    let r = catch_unwind(AssertUnwindSafe(body));
    BOUNDARY_DEPTH.with(|d| d.set(d.get() - 1));
    r.map_err(|payload| {
        let what = LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| payload_text(payload.as_ref()));
        format!("internal panic caught at the C boundary (a bug in fmr): {what}")
    })
}

/// Runs `body`, turning an `Err` into an `fmr_error*` and a panic into `FMR_ERR_PANIC` whose
/// message carries the panic's text and location. Returns NULL on success. Prints nothing.
pub(crate) fn guard(body: impl FnOnce() -> Result<()>) -> *mut fmr_error {
    match inside(body) {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(e)) => fmr_error::into_raw(e),
        Err(message) => fmr_error::into_raw(Error::new(ErrorCode::Panic, message)),
    }
}

/// Runs an infallible accessor; a panic yields `fallback`. Prints nothing.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    inside(body).unwrap_or(fallback)
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// A NULL check for a required pointer argument.
pub(crate) fn non_null<T>(p: *const T, name: &str) -> Result<()> {
    if p.is_null() {
        Err(Error::invalid(format!("{name} must not be NULL")))
    } else {
        Ok(())
    }
}

/// Exclusive use of a non-const handle's state for one call. A second call while one runs
/// (another thread, or a callback re-entering) gets `FMR_ERR_BUSY` instead of a data race; a
/// handle whose earlier call panicked reports that instead of running on unknown state.
pub(crate) fn exclusive<'a, T>(state: &'a Mutex<T>, what: &str) -> Result<MutexGuard<'a, T>> {
    match state.try_lock() {
        Ok(g) => Ok(g),
        Err(TryLockError::WouldBlock) => Err(Error::new(
            ErrorCode::Busy,
            format!(
                "the {what} is in use by another call (one call at a time; a callback may not \
                 call back into the {what} that runs it)"
            ),
        )),
        Err(TryLockError::Poisoned(_)) => Err(Error::new(
            ErrorCode::Panic,
            format!("the {what} is unusable: an earlier call on it panicked (a bug in fmr)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::error::{fmr_error_code, fmr_error_free};

    #[test]
    fn panics_become_errors_with_their_text_and_location() {
        let e = guard(|| panic!("boom {}", 42));
        assert!(!e.is_null());
        // SAFETY: e is a live error from guard.
        unsafe {
            assert_eq!(fmr_error_code(e), ErrorCode::Panic as u32);
            let mut len = 0usize;
            let m = std::ffi::CStr::from_ptr(crate::ffi::error::fmr_error_message(e, &mut len));
            let m = m.to_string_lossy();
            assert!(m.contains("boom 42") && m.contains("boundary.rs:"), "{m}");
            fmr_error_free(e);
        }
        assert_eq!(guard_value(7, || panic!("x")), 7);
        // Nested boundaries (a callback calling back into the library) keep the depth right.
        let outer = guard(|| {
            assert_eq!(guard_value(1, || panic!("inner")), 1);
            Ok(())
        });
        assert!(outer.is_null());
        assert_eq!(BOUNDARY_DEPTH.with(|d| d.get()), 0);
    }
}
