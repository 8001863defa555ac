//! Strings across the boundary: borrowed (pointer + length) in, library-owned out.

use crate::error::{Error, ErrorCode, Result};
use std::ffi::c_char;

/// Borrows `len` bytes at `ptr` as UTF-8. `ptr` may be NULL only when `len` is 0.
///
/// # Safety
/// `ptr` must be valid for `len` bytes for the lifetime `'a`.
pub(crate) unsafe fn borrow_str<'a>(ptr: *const c_char, len: usize, name: &str) -> Result<&'a str> {
    if len == 0 {
        return Ok("");
    }
    if ptr.is_null() {
        return Err(Error::invalid(format!("{name} must not be NULL")));
    }
    // SAFETY: the caller guarantees ptr is valid for len bytes.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    std::str::from_utf8(bytes).map_err(|e| {
        Error::new(
            ErrorCode::InvalidUtf8,
            format!("{name} is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })
}

/// Hands a Rust string to C as a NUL-terminated buffer from `malloc`, released with
/// `fmr_string_free` (which needs no length). Returns the pointer and the length without the NUL.
pub(crate) fn into_c_string(s: String) -> Result<(*mut c_char, usize)> {
    let len = s.len();
    // SAFETY: plain allocation of len + 1 bytes; checked for NULL below.
    let p = unsafe { libc::malloc(len + 1) }.cast::<u8>();
    if p.is_null() {
        return Err(Error::new(
            ErrorCode::Internal,
            format!("out of memory for a {len}-byte string"),
        ));
    }
    // SAFETY: p holds len + 1 writable bytes; s holds len readable bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), p, len);
        *p.add(len) = 0;
    }
    Ok((p.cast(), len))
}

/// Releases a string the library returned (`fmr_result_to_json`, `fmr_trainer_step`'s metrics,
/// `fmr_verify`'s detail). NULL is a no-op. Thread-safe.
///
/// # Safety
/// `s` is NULL or a string returned by fmr, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn fmr_string_free(s: *mut c_char) {
    // SAFETY: s is NULL or came from malloc in into_c_string; freed once.
    unsafe { libc::free(s.cast()) }
}
