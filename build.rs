//! Generates the C header from rust/ffi with cbindgen into OUT_DIR (checked against the
//! committed include/fmr.h by a test). With FMR_WRITE_HEADER=1 it also rewrites include/fmr.h.
//! On Linux it gives the shared library its soname (see `soname_version`).

use std::path::PathBuf;

/// The part of the version in the soname: MAJOR from 1.0 on, 0.MINOR before (each 0.x minor
/// release may break the ABI), as cargo-c names it. scripts/install.sh uses the same rule.
fn soname_version(major: &str, minor: &str) -> String {
    if major == "0" {
        format!("0.{minor}")
    } else {
        major.to_string()
    }
}

/// The export macro and the version macros, placed after the header's includes.
fn header_prelude(version: &str, major: &str, minor: &str, patch: &str) -> String {
    let number: u32 = major.parse::<u32>().unwrap_or(0) * 10000
        + minor.parse::<u32>().unwrap_or(0) * 100
        + patch.parse::<u32>().unwrap_or(0);
    format!(
        r#"
/**
 * @def FMR_API
 * Marks the library's functions: default visibility with GCC and Clang, dllimport on Windows
 * unless FMR_STATIC is defined (linking the static library). Define FMR_API yourself to
 * override.
 */
#ifndef FMR_API
#  if defined(_WIN32) && !defined(FMR_STATIC)
#    define FMR_API __declspec(dllimport)
#  elif defined(__GNUC__) || defined(__clang__)
#    define FMR_API __attribute__((visibility("default")))
#  else
#    define FMR_API
#  endif
#endif

/** The version of this header, "MAJOR.MINOR.PATCH"; `fmr_version()` is the library's. */
#define FMR_VERSION "{version}"
/** Major version of this header. */
#define FMR_VERSION_MAJOR {major}
/** Minor version of this header. */
#define FMR_VERSION_MINOR {minor}
/** Patch version of this header. */
#define FMR_VERSION_PATCH {patch}
/** MAJOR * 10000 + MINOR * 100 + PATCH of this header; `fmr_version_number()` is the library's. */
#define FMR_VERSION_NUMBER {number}
"#
    )
}

fn main() {
    println!("cargo:rerun-if-changed=rust/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=FMR_WRITE_HEADER");
    let env = |k: &str| std::env::var(k).expect("cargo sets this");
    let crate_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env("OUT_DIR"));
    let (major, minor, patch) = (
        env("CARGO_PKG_VERSION_MAJOR"),
        env("CARGO_PKG_VERSION_MINOR"),
        env("CARGO_PKG_VERSION_PATCH"),
    );
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,-soname,libfmr.so.{}",
            soname_version(&major, &minor)
        );
    }
    // A dynamic-backends build: where llama-cpp-sys-2 put the backend modules (found at run
    // time when nothing else is), and libfmr.so finds libllama/libggml beside itself.
    if let Ok(dir) = std::env::var("DEP_LLAMA_BACKENDS_DIR") {
        println!("cargo:rustc-env=FMR_BUILD_BACKEND_DIR={dir}");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,$ORIGIN");
    }
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    config.after_includes = Some(header_prelude(
        &env("CARGO_PKG_VERSION"),
        &major,
        &minor,
        &patch,
    ));
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
