//! Generates the C header from rust/ffi with cbindgen into OUT_DIR (checked against the
//! committed include/fmr.h by a test). With FMR_WRITE_HEADER=1 it also rewrites include/fmr.h.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=rust/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=FMR_WRITE_HEADER");
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets this"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("rust/ffi/mod.rs"))
        .generate()
        .expect("cbindgen could not parse rust/ffi");
    bindings.write_to_file(out_dir.join("fmr.h"));
    if std::env::var_os("FMR_WRITE_HEADER").is_some() {
        bindings.write_to_file(crate_dir.join("include/fmr.h"));
    }
}
