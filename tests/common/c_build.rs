//! Building and running the C and C++ test programs against include/fmr.h and libfmr.so.

use std::path::{Path, PathBuf};
use std::process::Command;

/// target/<profile>, where cargo put libfmr.so for this test run.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf(); // .../deps/.. = profile dir
    assert!(
        dir.join("libfmr.so").is_file(),
        "libfmr.so not found in {}: run `cargo build --release` before the tests",
        dir.display()
    );
    dir
}

pub fn compile(compiler: &str, std: &str, src: &str, out: &Path, extra: &[&str]) {
    let root = env!("CARGO_MANIFEST_DIR");
    let lib = lib_dir();
    let status = Command::new(compiler)
        .arg(format!("-std={std}"))
        .args(["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-g"])
        .args(extra)
        .arg(format!("-I{root}/include"))
        .arg(format!("{root}/{src}"))
        .arg("-o")
        .arg(out)
        .arg(format!("-L{}", lib.display()))
        .arg("-lfmr")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lm")
        .status()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(status.success(), "{compiler} failed on {src}");
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout + &stderr
}
