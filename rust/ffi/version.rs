//! Library version: the header's `FMR_VERSION*` macros (written by build.rs from Cargo.toml)
//! and the runtime functions that a host compares them with.

use std::ffi::c_char;

/// Parses a decimal version component at compile time.
const fn parse(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0u32;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

const MAJOR: u32 = parse(env!("CARGO_PKG_VERSION_MAJOR"));
const MINOR: u32 = parse(env!("CARGO_PKG_VERSION_MINOR"));
const PATCH: u32 = parse(env!("CARGO_PKG_VERSION_PATCH"));

static VERSION_CSTR: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library's version as "MAJOR.MINOR.PATCH", a static NUL-terminated string. Compare it
/// with the header's `FMR_VERSION` to detect a program run against another library.
#[no_mangle]
pub extern "C" fn fmr_version() -> *const c_char {
    VERSION_CSTR.as_ptr().cast()
}

/// The library's version as one number, MAJOR * 10000 + MINOR * 100 + PATCH, as the header's
/// `FMR_VERSION_NUMBER`.
#[no_mangle]
pub extern "C" fn fmr_version_number() -> u32 {
    MAJOR * 10000 + MINOR * 100 + PATCH
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header cbindgen generated during this build.
    const HEADER: &str = include_str!(concat!(env!("OUT_DIR"), "/fmr.h"));

    #[test]
    fn header_macros_and_functions_match_cargo_toml() {
        let v = env!("CARGO_PKG_VERSION");
        // SAFETY: fmr_version returns a static NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(fmr_version()) };
        assert_eq!(s.to_str().unwrap(), v);
        let n: Vec<u32> = v.split('.').map(|p| p.parse().unwrap()).collect();
        assert_eq!(fmr_version_number(), n[0] * 10000 + n[1] * 100 + n[2]);
        for line in [
            format!("#define FMR_VERSION \"{v}\""),
            format!("#define FMR_VERSION_MAJOR {}", n[0]),
            format!("#define FMR_VERSION_MINOR {}", n[1]),
            format!("#define FMR_VERSION_PATCH {}", n[2]),
            format!("#define FMR_VERSION_NUMBER {}", fmr_version_number()),
        ] {
            assert!(HEADER.contains(&line), "header lacks `{line}`");
        }
    }
}
