//! Process-wide llama.cpp initialisation.

use llama_cpp_sys_2 as sys;
use std::ffi::CStr;
use std::os::raw::{c_char, c_void};
use std::sync::Once;

static INIT: Once = Once::new();

/// Initialises llama.cpp's backends once per process and routes its log output. In a
/// `dynamic-backends` build it also loads the backend modules (the best CPU variant for this
/// host, and CUDA when its module is present; see `modules.rs` for where they are looked for).
///
/// llama.cpp's log output is dropped unless the environment variable `FMR_LLAMA_LOG` is set (to
/// anything), so host programs get no chatter on stderr; failures reach callers as errors. Safe to call from any thread, any
/// number of times.
pub fn init_backend() {
    INIT.call_once(|| {
        let verbose = std::env::var_os("FMR_LLAMA_LOG").is_some();
        // SAFETY: llama_backend_init has no preconditions; the log callback is a plain function
        // with no captured state, valid for the whole process.
        unsafe {
            if !verbose {
                sys::llama_log_set(Some(quiet_log), std::ptr::null_mut());
            }
        }
        // Before llama_backend_init, which loads every module it finds (ggml's own choice of
        // CPU variant) when none is registered yet.
        #[cfg(feature = "dynamic-backends")]
        super::modules::load_backend_modules();
        // SAFETY: no preconditions.
        unsafe { sys::llama_backend_init() };
    });
}

/// Whether a CPU backend is registered (always, unless a `dynamic-backends` build found no
/// module to load). Loads the backends first.
pub(crate) fn has_cpu_backend() -> bool {
    init_backend();
    let name = std::ffi::CString::new("CPU").unwrap_or_default();
    // SAFETY: a registry lookup by a NUL-terminated name.
    !unsafe { sys::ggml_backend_reg_by_name(name.as_ptr()) }.is_null()
}

/// A log sink that drops everything.
unsafe extern "C" fn quiet_log(
    _level: sys::ggml_log_level,
    _text: *const c_char,
    _ud: *mut c_void,
) {
}

/// llama.cpp's description of the CPU/GPU features it was built with (for benchmarks and logs).
pub fn system_info() -> String {
    init_backend();
    // SAFETY: returns a pointer to a static NUL-terminated string owned by llama.cpp.
    unsafe {
        let p = sys::llama_print_system_info();
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}
