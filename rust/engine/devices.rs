//! Compute devices as ggml's backend registry lists them (the CPU, and a GPU when the CUDA
//! backend module is loaded), and which CPU variant runs.

use std::ffi::CStr;
use std::os::raw::c_char;

use llama_cpp_sys_2 as sys;
use serde::Serialize;

use super::backend::init_backend;

/// What kind of device a [`DeviceInfo`] is. Values are part of the C ABI; never reused.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// The host CPU.
    Cpu = 1,
    /// A discrete GPU (CUDA).
    Gpu = 2,
    /// An integrated GPU.
    IntegratedGpu = 3,
    /// An accelerator that works beside the CPU (e.g. a BLAS backend).
    Accelerator = 4,
    /// Anything else ggml lists.
    Other = 5,
}

/// One device: its index in ggml's device list, names, backend and memory (bytes).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceInfo {
    /// Index in the device list (the `main_gpu` of [`super::ModelParams`] counts GPUs only).
    pub index: usize,
    /// ggml's device name (`CPU`, `CUDA0`, …).
    pub name: String,
    /// A description (the CPU's model name, the GPU's product name).
    pub description: String,
    /// The backend that provides it (`CPU`, `CUDA`, …).
    pub backend: String,
    pub kind: DeviceKind,
    /// Total and free memory in bytes, as the backend reports them (the CPU reports the host's).
    pub memory_total: u64,
    pub memory_free: u64,
}

fn c_str(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: ggml returns NUL-terminated strings that live as long as the registry.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Every device ggml knows, in its order. Loads the backends first (see
/// [`super::init_backend`]). Thread-safe.
pub fn devices() -> Vec<DeviceInfo> {
    init_backend();
    // SAFETY: the registry is initialised; indices are below the count it reports, and every
    // getter takes a device handle the registry returned.
    unsafe {
        (0..sys::ggml_backend_dev_count())
            .filter_map(|i| {
                let d = sys::ggml_backend_dev_get(i);
                if d.is_null() {
                    return None;
                }
                let (mut free, mut total) = (0usize, 0usize);
                sys::ggml_backend_dev_memory(d, &mut free, &mut total);
                let reg = sys::ggml_backend_dev_backend_reg(d);
                let kind = match sys::ggml_backend_dev_type(d) {
                    sys::GGML_BACKEND_DEVICE_TYPE_CPU => DeviceKind::Cpu,
                    sys::GGML_BACKEND_DEVICE_TYPE_GPU => DeviceKind::Gpu,
                    sys::GGML_BACKEND_DEVICE_TYPE_IGPU => DeviceKind::IntegratedGpu,
                    sys::GGML_BACKEND_DEVICE_TYPE_ACCEL => DeviceKind::Accelerator,
                    _ => DeviceKind::Other,
                };
                Some(DeviceInfo {
                    index: i,
                    name: c_str(sys::ggml_backend_dev_name(d)),
                    description: c_str(sys::ggml_backend_dev_description(d)),
                    backend: if reg.is_null() {
                        String::new()
                    } else {
                        c_str(sys::ggml_backend_reg_name(reg))
                    },
                    kind,
                    memory_total: total as u64,
                    memory_free: free as u64,
                })
            })
            .collect()
    }
}

/// The GPUs among [`devices`] (discrete and integrated), in order: `main_gpu` indexes this list.
pub fn gpus() -> Vec<DeviceInfo> {
    devices()
        .into_iter()
        .filter(|d| matches!(d.kind, DeviceKind::Gpu | DeviceKind::IntegratedGpu))
        .collect()
}

/// The CPU backend in use: where its code comes from (a variant module such as
/// `libggml-cpu-haswell.so`, or `built-in`) and the instruction-set features it was built for.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CpuVariant {
    /// The variant's library file name, or `built-in` when the CPU backend is linked in.
    pub library: String,
    /// Features as ggml names them (`AVX2`, `FMA`, `AVX512`, …), those reported as enabled.
    pub features: Vec<String>,
}

/// Which CPU backend variant runs (ggml picks the best one the host supports at start-up).
pub fn cpu_variant() -> CpuVariant {
    init_backend();
    let name = std::ffi::CString::new("CPU").unwrap_or_default();
    let fname = std::ffi::CString::new("ggml_backend_get_features").unwrap_or_default();
    // SAFETY: registry lookups by NUL-terminated name; a found proc address has the
    // documented `ggml_backend_get_features_t` signature and returns an array of (name, value)
    // pairs ended by a NULL name, owned by the backend.
    unsafe {
        let reg = sys::ggml_backend_reg_by_name(name.as_ptr());
        if reg.is_null() {
            return CpuVariant {
                library: String::new(),
                features: Vec::new(),
            };
        }
        let f = sys::ggml_backend_reg_get_proc_address(reg, fname.as_ptr());
        let library = library_of(f as *const std::ffi::c_void);
        let mut features = Vec::new();
        if !f.is_null() {
            type GetFeatures =
                unsafe extern "C" fn(sys::ggml_backend_reg_t) -> *const sys::ggml_backend_feature;
            let get: GetFeatures = std::mem::transmute(f);
            let mut p = get(reg);
            while !p.is_null() && !(*p).name.is_null() {
                let n = c_str((*p).name);
                let v = c_str((*p).value);
                if v == "1" {
                    features.push(n);
                }
                p = p.add(1);
            }
        }
        CpuVariant { library, features }
    }
}

/// The file name of the shared object that holds `addr`, or `built-in` when it is the main
/// program or a library that also holds this function (the backend is linked in).
fn library_of(addr: *const std::ffi::c_void) -> String {
    let of = |a: *const std::ffi::c_void| -> Option<String> {
        // SAFETY: dladdr only reads the loader's tables; info is written on success.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        if a.is_null() || unsafe { libc::dladdr(a, &mut info) } == 0 || info.dli_fname.is_null() {
            return None;
        }
        Some(c_str(info.dli_fname))
    };
    let Some(path) = of(addr) else {
        return "built-in".into();
    };
    if of(library_of as *const std::ffi::c_void).as_deref() == Some(path.as_str()) {
        return "built-in".into();
    }
    std::path::Path::new(&path)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or(path)
}
