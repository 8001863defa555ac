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
//! Which CPU variant: each module's own `ggml_backend_score` rates it for this host (0 = cannot
//! run here) and the best one is loaded, as ggml itself does — except that variants in
//! [`UNSAFE_CPU_VARIANTS`] are passed over: the `sapphirerapids` variant's AMX kernels stop the
//! process with SIGILL on a host whose CPU reports AMX (a Firecracker VM; the tile permission
//! was granted), a crash no error path can catch. `FMR_CPU_VARIANT=NAME` (`haswell`, `zen4`,
//! `sapphirerapids`, …) loads that variant and no other. Other backends (`libggml-cuda.so`, …)
//! in the folder are loaded when present.
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
                name.starts_with("libggml-") && name.ends_with(".so") && name != "libggml-base.so"
            })
        })
        .unwrap_or(false)
}

/// The first candidate directory that holds modules.
pub(crate) fn module_dir() -> Option<PathBuf> {
    candidate_dirs().into_iter().find(|d| holds_modules(d))
}

/// CPU variants never chosen unless `FMR_CPU_VARIANT` names them (see the module docs).
pub(crate) const UNSAFE_CPU_VARIANTS: &[&str] = &["sapphirerapids"];

/// GPU and accelerator backends loaded from the folder when their module is there.
const OTHER_BACKENDS: &[&str] = &["cuda", "blas", "vulkan"];

/// The variant name of a CPU module file (`libggml-cpu-zen4.so` → `zen4`).
fn cpu_variant_name(file_name: &str) -> Option<&str> {
    file_name
        .strip_prefix("libggml-cpu-")
        .and_then(|rest| rest.strip_suffix(".so"))
}

/// Picks the CPU module to load from (variant, score) pairs: the forced one if named (and
/// present with a score above 0), else the best-scored variant not in [`UNSAFE_CPU_VARIANTS`].
pub(crate) fn choose_cpu_variant<'a>(
    scored: &'a [(String, i32)],
    forced: Option<&str>,
) -> Option<&'a str> {
    let candidates = scored.iter().filter(|(name, score)| {
        *score > 0
            && match forced {
                Some(f) => name == f,
                None => !UNSAFE_CPU_VARIANTS.contains(&name.as_str()),
            }
    });
    candidates
        .max_by_key(|(_, score)| *score)
        .map(|(name, _)| name.as_str())
}

/// Asks a CPU module how well it fits this host (its `ggml_backend_score`; 0 when it cannot
/// run here or cannot be opened). The module is closed again.
fn score_module(path: &Path) -> i32 {
    let Ok(c_path) = CString::new(path.to_string_lossy().into_owned()) else {
        return 0;
    };
    // SAFETY: dlopen of a ggml backend module (its constructors only register nothing until
    // `ggml_backend_init` is called); the score symbol, when present, has ggml's documented
    // signature `int (void)`; the handle is closed after the call.
    unsafe {
        let handle = libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if handle.is_null() {
            return 0;
        }
        let sym = libc::dlsym(handle, c"ggml_backend_score".as_ptr());
        let score = if sym.is_null() {
            0
        } else {
            let f: unsafe extern "C" fn() -> i32 = std::mem::transmute(sym);
            f()
        };
        libc::dlclose(handle);
        score
    }
}

/// Registers one module with ggml.
fn load_module(path: &Path) {
    let Ok(c_path) = CString::new(path.to_string_lossy().into_owned()) else {
        return;
    };
    // SAFETY: a NUL-terminated path that outlives the call; ggml keeps the handle.
    unsafe { sys::ggml_backend_load(c_path.as_ptr()) };
}

/// Loads the chosen CPU variant and any other backend modules from [`module_dir`] (called
/// once, from `init_backend`).
#[cfg_attr(not(feature = "dynamic-backends"), allow(dead_code))]
pub(crate) fn load_backend_modules() {
    let Some(dir) = module_dir() else { return };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut scored = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(name) = cpu_variant_name(&file) {
            scored.push((name.to_string(), score_module(&entry.path())));
        }
    }
    let forced = std::env::var("FMR_CPU_VARIANT").ok();
    if let Some(name) = choose_cpu_variant(&scored, forced.as_deref()) {
        load_module(&dir.join(format!("libggml-cpu-{name}.so")));
    }
    for other in OTHER_BACKENDS {
        let path = dir.join(format!("libggml-{other}.so"));
        if path.is_file() {
            load_module(&path);
        }
    }
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
    fn the_best_safe_variant_wins_unless_one_is_forced() {
        let scored: Vec<(String, i32)> = [
            ("haswell", 40),
            ("sapphirerapids", 90),
            ("zen4", 80),
            ("sse42", 10),
            ("armv9", 0),
        ]
        .iter()
        .map(|(n, s)| (n.to_string(), *s))
        .collect();
        assert_eq!(choose_cpu_variant(&scored, None), Some("zen4"));
        assert_eq!(
            choose_cpu_variant(&scored, Some("sapphirerapids")),
            Some("sapphirerapids")
        );
        assert_eq!(
            choose_cpu_variant(&scored, Some("haswell")),
            Some("haswell")
        );
        // A forced variant that cannot run here (score 0) or is absent loads nothing.
        assert_eq!(choose_cpu_variant(&scored, Some("armv9")), None);
        assert_eq!(choose_cpu_variant(&scored, Some("nope")), None);
        assert_eq!(choose_cpu_variant(&[], None), None);
        assert_eq!(cpu_variant_name("libggml-cpu-zen4.so"), Some("zen4"));
        assert_eq!(cpu_variant_name("libggml-cuda.so"), None);
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
