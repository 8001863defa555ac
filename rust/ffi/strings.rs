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

/// Hands a Rust string to C as a NUL-terminated buffer to be released with `fmr_string_free`.
pub(crate) fn into_c_string(s: String) -> (*mut c_char, usize) {
    let mut bytes = s.into_bytes();
    let len = bytes.len();
    bytes.push(0);
    let boxed = bytes.into_boxed_slice();
    (Box::into_raw(boxed).cast::<c_char>(), len)
}

/// Releases a string returned by fmr (e.g. by `fmr_result_to_json`). `len` is the length the
/// library reported (without the NUL). NULL is a no-op.
///
/// # Safety
/// `s` is NULL or a string returned by fmr with this `len`, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn fmr_string_free(s: *mut c_char, len: usize) {
    if s.is_null() {
        return;
    }
    // SAFETY: s was produced by into_c_string as a boxed slice of len + 1 bytes.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(s.cast::<u8>(), len + 1)) });
}
