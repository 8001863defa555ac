//! The C ABI. Conventions (see include/fmr.h):
//! - opaque handles `fmr_x`, created by `fmr_x_new`/`_load`, released by `fmr_x_free` (NULL is
//!   a no-op);
//! - fallible calls return `fmr_error*`, NULL on success; outputs are written only on success;
//! - every exported body runs inside `boundary::guard`, so a panic becomes `FMR_ERR_PANIC`;
//! - strings are UTF-8 with explicit lengths; library-owned buffers have named free functions;
//! - every struct starts with `struct_size` and only grows at its end (`growable.rs`);
//! - `const` handles may be used from several threads at once; non-`const` ones take one call
//!   at a time, and a concurrent call gets `FMR_ERR_BUSY` (`boundary::exclusive`).
#![allow(non_camel_case_types)]

pub mod boundary;
pub mod budget;
pub mod cancel;
pub mod device;
pub mod error;
pub mod generator;
mod growable;
pub mod model;
pub mod result;
pub mod strings;
pub mod trainer;
pub mod verify;
pub mod version;

#[cfg(test)]
mod header_tests {
    /// The header cbindgen generated during this build.
    const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/fmr.h"));

    #[test]
    fn committed_header_matches_generated() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/fmr.h");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == GENERATED,
            "include/fmr.h is stale: regenerate with `FMR_WRITE_HEADER=1 cargo build` and commit it"
        );
    }
}
