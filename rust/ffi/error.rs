//! `fmr_error`: error objects returned by fallible calls.

use crate::error::{Error, ErrorCode};
use std::ffi::c_char;

/// Error codes (`fmr_error_code`). Fixed values, never reused.
pub type fmr_error_code_t = u32;
/// A parameter was out of range or NULL.
pub const FMR_ERR_INVALID_ARGUMENT: fmr_error_code_t = 1;
/// Text that must be UTF-8 was not.
pub const FMR_ERR_INVALID_UTF8: fmr_error_code_t = 2;
/// A file could not be read or written.
pub const FMR_ERR_IO: fmr_error_code_t = 3;
/// A model file is missing, corrupt or unsupported.
pub const FMR_ERR_MODEL_LOAD: fmr_error_code_t = 4;
/// The context cannot hold the prompt and the requested generation.
pub const FMR_ERR_CONTEXT_TOO_SMALL: fmr_error_code_t = 5;
/// llama.cpp failed to evaluate a batch.
pub const FMR_ERR_DECODE: fmr_error_code_t = 6;
/// The operation was cancelled.
pub const FMR_ERR_CANCELLED: fmr_error_code_t = 7;
/// JSON parameters were malformed or had unknown keys.
pub const FMR_ERR_INVALID_CONFIG: fmr_error_code_t = 8;
/// An index was out of range.
pub const FMR_ERR_OUT_OF_RANGE: fmr_error_code_t = 9;
/// A panic was caught at the C boundary (a bug in fmr).
pub const FMR_ERR_PANIC: fmr_error_code_t = 10;
/// An internal invariant failed (a bug in fmr).
pub const FMR_ERR_INTERNAL: fmr_error_code_t = 11;
/// An adapter is missing, corrupt or made for another model.
pub const FMR_ERR_ADAPTER_LOAD: fmr_error_code_t = 12;
/// The feature is not available in this build or on this machine.
pub const FMR_ERR_UNSUPPORTED: fmr_error_code_t = 13;
/// NaN or infinite numbers in logits, a loss, gradients or weights (a corrupt model or
/// adapter, or a diverged update); the message names the sample and position or the step.
pub const FMR_ERR_NON_FINITE: fmr_error_code_t = 14;
/// A host callback reported failure: a reward callback returned false (or a binding's callback
/// raised an exception or panicked). The step changed nothing; unlike a cancel, a run does not
/// checkpoint on it.
pub const FMR_ERR_CALLBACK_FAILED: fmr_error_code_t = 15;
/// The handle is in use by another call: two calls at once on a non-const handle, or a callback
/// calling back into the handle that runs it. Nothing was done.
pub const FMR_ERR_BUSY: fmr_error_code_t = 16;
/// Not enough device or host memory for a model or a context; the message names what was
/// needed and what was free.
pub const FMR_ERR_OUT_OF_MEMORY: fmr_error_code_t = 17;

/// An error: a code and a NUL-terminated UTF-8 message. Owned by the caller, released with
/// `fmr_error_free`. Immutable: may be read from several threads.
pub struct fmr_error {
    code: ErrorCode,
    /// Message bytes followed by one NUL.
    message: Vec<u8>,
}

impl fmr_error {
    pub(crate) fn into_raw(e: Error) -> *mut fmr_error {
        let mut message: Vec<u8> = e.message().bytes().filter(|&b| b != 0).collect();
        message.push(0);
        Box::into_raw(Box::new(fmr_error {
            code: e.code(),
            message,
        }))
    }
}

/// The error's code (`FMR_ERR_*`); 0 for a NULL error.
///
/// # Safety
/// `err` is NULL or a live error returned by fmr.
#[no_mangle]
pub unsafe extern "C" fn fmr_error_code(err: *const fmr_error) -> fmr_error_code_t {
    // SAFETY: the caller passes NULL or a live error.
    unsafe { err.as_ref() }.map_or(0, |e| e.code as u32)
}

/// The error's message, NUL-terminated UTF-8, valid until `fmr_error_free(err)`. If `len` is not
/// NULL it receives the length in bytes without the NUL. NULL error: returns "" (length 0).
///
/// # Safety
/// `err` is NULL or a live error; `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fmr_error_message(
    err: *const fmr_error,
    len: *mut usize,
) -> *const c_char {
    static EMPTY: [u8; 1] = [0];
    // SAFETY: the caller passes NULL or a live error.
    let bytes: &[u8] = unsafe { err.as_ref() }.map_or(&EMPTY[..], |e| &e.message[..]);
    if !len.is_null() {
        // SAFETY: len is writable per the contract.
        unsafe { *len = bytes.len() - 1 };
    }
    bytes.as_ptr().cast()
}

/// Releases an error. NULL is a no-op.
///
/// # Safety
/// `err` is NULL or a live error not yet freed.
#[no_mangle]
pub unsafe extern "C" fn fmr_error_free(err: *mut fmr_error) {
    if !err.is_null() {
        // SAFETY: err came from Box::into_raw in into_raw and is freed once.
        drop(unsafe { Box::from_raw(err) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_codes_match_error_codes() {
        let pairs = [
            (FMR_ERR_INVALID_ARGUMENT, ErrorCode::InvalidArgument),
            (FMR_ERR_INVALID_UTF8, ErrorCode::InvalidUtf8),
            (FMR_ERR_IO, ErrorCode::Io),
            (FMR_ERR_MODEL_LOAD, ErrorCode::ModelLoad),
            (FMR_ERR_CONTEXT_TOO_SMALL, ErrorCode::ContextTooSmall),
            (FMR_ERR_DECODE, ErrorCode::Decode),
            (FMR_ERR_CANCELLED, ErrorCode::Cancelled),
            (FMR_ERR_INVALID_CONFIG, ErrorCode::InvalidConfig),
            (FMR_ERR_OUT_OF_RANGE, ErrorCode::OutOfRange),
            (FMR_ERR_PANIC, ErrorCode::Panic),
            (FMR_ERR_INTERNAL, ErrorCode::Internal),
            (FMR_ERR_ADAPTER_LOAD, ErrorCode::AdapterLoad),
            (FMR_ERR_UNSUPPORTED, ErrorCode::Unsupported),
            (FMR_ERR_NON_FINITE, ErrorCode::NonFinite),
            (FMR_ERR_CALLBACK_FAILED, ErrorCode::CallbackFailed),
            (FMR_ERR_BUSY, ErrorCode::Busy),
            (FMR_ERR_OUT_OF_MEMORY, ErrorCode::OutOfMemory),
        ];
        for (c, code) in pairs {
            assert_eq!(c, code as u32);
        }
    }

    #[test]
    fn message_round_trip_and_null_safety() {
        let e = fmr_error::into_raw(Error::invalid("bad \0 thing"));
        let mut len = 0usize;
        // SAFETY: e is live until freed below.
        unsafe {
            let m = std::ffi::CStr::from_ptr(fmr_error_message(e, &mut len));
            assert_eq!(m.to_bytes().len(), len);
            assert_eq!(fmr_error_code(e), FMR_ERR_INVALID_ARGUMENT);
            fmr_error_free(e);
            assert_eq!(fmr_error_code(std::ptr::null()), 0);
            fmr_error_free(std::ptr::null_mut());
        }
    }
}
