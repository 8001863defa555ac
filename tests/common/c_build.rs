//! Building and running the C and C++ test programs against include/fmr.h and libfmr.so, in the
//! build tree or in an installed prefix (scripts/install.sh).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The soname's version part, as build.rs and scripts/install.sh compute it.
pub fn soname() -> String {
    let (major, minor) = (
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
    );
    if major == "0" {
        format!("libfmr.so.0.{minor}")
    } else {
        format!("libfmr.so.{major}")
    }
}

/// target/<profile>, where cargo put libfmr.so for this test run. Programs linked against it
/// ask for its soname, so a link by that name is made next to it.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf(); // .../deps/.. = profile dir
    assert!(
        dir.join("libfmr.so").is_file(),
        "libfmr.so not found in {}: run `cargo build --release` before the tests",
        dir.display()
    );
    let link = dir.join(soname());
    if std::fs::read_link(&link).is_err() {
        let _ = std::fs::remove_file(&link);
        // Tests run in parallel: another one may have made it meanwhile.
        if let Err(e) = std::os::unix::fs::symlink("libfmr.so", &link) {
            assert!(link.exists(), "cannot link {}: {e}", link.display());
        }
    }
    dir
}

/// Compiles `src` (relative to the repository) with warnings as errors against the build tree.
pub fn compile(compiler: &str, std: &str, src: &str, out: &Path, extra: &[&str]) {
    let root = env!("CARGO_MANIFEST_DIR");
    let lib = lib_dir();
    let status = Command::new(compiler)
        .arg(format!("-std={std}"))
        .args(["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-g"])
        .args(extra)
        .arg(format!("-I{root}/include"))
        .arg(format!("-I{root}/tests/c"))
        .arg(format!("{root}/{src}"))
        .arg("-o")
        .arg(out)
        .arg(format!("-L{}", lib.display()))
        .arg("-lfmr")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lm")
        .arg("-pthread")
        .status()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(status.success(), "{compiler} failed on {src}");
}

/// Runs a command that must succeed; returns its stdout and stderr.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = text_of(&out);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}

/// stdout followed by stderr.
pub fn text_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}
