//! Backend modules of a `dynamic-backends` build: ggml's CPU backend in one shared module per
//! instruction-set level (`libggml-cpu-haswell.so`, `…-icelake.so`, …) and the CUDA backend
//! (`libggml-cuda.so`, built by scripts/build_cuda_backend.sh), loaded at start-up. ggml scores
//! every CPU variant against the host and loads the best one; the CUDA module is loaded when it
//! is present and its libraries (libcudart, libcublas, the driver) can be found.
//!
//! Where modules are looked for, first directory that holds any `libggml-*.so` wins:
//! 1. the directory in the environment variable `FMR_BACKEND_DIR`;
//! 2. `fmr/backends/` beside the shared object that holds this code (the install layout:
//!    `PREFIX/lib/libfmr.so` and `PREFIX/lib/fmr/backends/`), then that directory itself;
//! 3. the directory the build wrote them to (`cargo run`/`cargo test` on the build machine).
//!
//! Nothing is printed; a build that finds no module ends with no CPU backend, and model loading
//! reports it as an error naming these places.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use llama_cpp_sys_2 as sys;

/// The directory the build placed the modules in (set by build.rs from llama-cpp-sys-2).
const BUILD_BACKEND_DIR: Option<&str> = option_env!("FMR_BUILD_BACKEND_DIR");

/// The candidate directories, in search order (see the module documentation).
pub(crate) fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("FMR_BACKEND_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(own) = own_object_dir() {
        dirs.push(own.join("fmr").join("backends"));
        dirs.push(own);
    }
    if let Some(d) = BUILD_BACKEND_DIR {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

/// Whether `dir` holds at least one ggml backend module.
fn holds_modules(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("libggml-")
                    && name.ends_with(".so")
                    && name != "libggml-base.so"
            })
        })
        .unwrap_or(false)
}

/// The first candidate directory that holds modules.
pub(crate) fn module_dir() -> Option<PathBuf> {
    candidate_dirs().into_iter().find(|d| holds_modules(d))
}

/// Loads every module ggml knows from [`module_dir`] (called once, from `init_backend`).
#[cfg_attr(not(feature = "dynamic-backends"), allow(dead_code))]
pub(crate) fn load_backend_modules() {
    let Some(dir) = module_dir() else { return };
    let Ok(c_dir) = CString::new(dir.to_string_lossy().into_owned()) else {
        return;
    };
    // SAFETY: a NUL-terminated path that outlives the call; ggml copies what it keeps.
    unsafe { sys::ggml_backend_load_all_from_path(c_dir.as_ptr()) };
}

/// The directory of the shared object (or executable) that holds this function.
fn own_object_dir() -> Option<PathBuf> {
    let addr = own_object_dir as *const std::ffi::c_void;
    // SAFETY: dladdr only reads the loader's tables; info is written on success.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader.
    let file = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(file.to_string_lossy().into_owned());
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    path.parent().map(Path::to_path_buf)
}

/// What model loading says when no CPU backend is registered.
pub(crate) fn missing_modules_message() -> String {
    let places: Vec<String> = candidate_dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    format!(
        "no CPU backend module found (a dynamic-backends build loads libggml-cpu-*.so at start-up); looked in: {} — set FMR_BACKEND_DIR to the folder that holds them",
        places.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_directory_comes_first() {
        // Reads the variable only; the process-wide backends are not touched.
        let dirs = candidate_dirs();
        if let Some(d) = std::env::var_os("FMR_BACKEND_DIR") {
            assert_eq!(dirs[0], PathBuf::from(d));
        }
        assert!(own_object_dir().is_some(), "dladdr finds the test binary");
    }

    #[test]
    fn a_folder_without_modules_is_skipped() {
        let dir = std::env::temp_dir().join(format!("fmr-no-modules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("libggml-base.so"), b"").unwrap();
        assert!(!holds_modules(&dir));
        std::fs::write(dir.join("libggml-cpu-x64.so"), b"").unwrap();
        assert!(holds_modules(&dir));
        std::fs::remove_dir_all(&dir).ok();
    }
}
