//! Library version, as macros in the header and as a runtime function.

use std::ffi::c_char;

/// Major version (matches Cargo.toml; tested).
pub const FMR_VERSION_MAJOR: u32 = 0;
/// Minor version (matches Cargo.toml; tested).
pub const FMR_VERSION_MINOR: u32 = 1;
/// Patch version (matches Cargo.toml; tested).
pub const FMR_VERSION_PATCH: u32 = 0;

static VERSION_CSTR: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library version as "MAJOR.MINOR.PATCH", a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn fmr_version() -> *const c_char {
    VERSION_CSTR.as_ptr().cast()
}

/// The version as one number: MAJOR * 10000 + MINOR * 100 + PATCH.
#[no_mangle]
pub extern "C" fn fmr_version_number() -> u32 {
    FMR_VERSION_MAJOR * 10000 + FMR_VERSION_MINOR * 100 + FMR_VERSION_PATCH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_constants_match_cargo_toml() {
        assert_eq!(
            FMR_VERSION_MAJOR.to_string(),
            env!("CARGO_PKG_VERSION_MAJOR")
        );
        assert_eq!(
            FMR_VERSION_MINOR.to_string(),
            env!("CARGO_PKG_VERSION_MINOR")
        );
        assert_eq!(
            FMR_VERSION_PATCH.to_string(),
            env!("CARGO_PKG_VERSION_PATCH")
        );
        // SAFETY: fmr_version returns a static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(fmr_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
