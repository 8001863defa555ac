//! The GPU: context, one stream, cuBLAS, the NVRTC module of `kernels.cu`, device buffers and
//! the two primitives everything else is built from (a kernel launch and a row-major GEMM).
//!
//! Libraries are loaded at run time (cudarc's dynamic loading). cudarc panics when a library
//! or symbol is missing, so [`Gpu::new`] first checks that each library can be opened and runs
//! every first use of a library inside `catch_unwind`: a machine without CUDA gets a
//! [`TrainError::DeviceUnavailable`], never a panic.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::{result as blas_result, sys as blas_sys, CudaBlas};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig,
    PushKernelArg, ValidAsZeroBits,
};
use cudarc::nvrtc::{CompileOptions, Ptx};

use crate::train::error::{Result, TrainError};

/// The kernel source compiled by NVRTC.
pub const KERNEL_SOURCE: &str = include_str!("kernels.cu");

/// Every `extern "C"` kernel of [`KERNEL_SOURCE`] (the module loads each one).
pub const KERNEL_NAMES: [&str; 32] = [
    "dequant_f32",
    "dequant_bf16",
    "embed",
    "to_bf16",
    "from_bf16",
    "add_inplace",
    "add_bias",
    "rmsnorm_fwd",
    "rmsnorm_bwd",
    "rope",
    "swiglu_fwd",
    "swiglu_bwd",
    "geglu_fwd",
    "geglu_bwd",
    "to_group_major",
    "from_group_major",
    "causal_softmax",
    "softmax_bwd",
    "gather_rows_f32",
    "gather_rows_bf16",
    "scatter_add_rows",
    "lse_update",
    "lse_init",
    "lse_finish",
    "head_grad",
    "adamw",
    "sum_squares",
    "grpo_token",
    "sft_token",
    "scale_inplace",
    "fill_f32",
    "copy_f32",
];

pub(crate) fn dev_err(what: &str, e: impl std::fmt::Debug) -> TrainError {
    TrainError::Device(format!("{what}: {e:?}"))
}

/// Environment variable naming a folder whose CUDA libraries (`libcuda.so*`, `libcublas*.so*`,
/// `libnvrtc*.so*`) are loaded before the system search.
pub const LIB_DIR_ENV: &str = "FMR_CUDA_LIB_DIR";

static PRELOADED: Mutex<Vec<libloading::Library>> = Mutex::new(Vec::new());

/// Opens the CUDA libraries found in `dir` (NVRTC's builtins first), keeping them loaded for
/// the life of the process, so that cudarc's later search by name finds them. Returns how many
/// were opened. Missing files are skipped; an unloadable file is an error.
pub fn preload_cuda_libraries(dir: &Path) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Err(TrainError::DeviceUnavailable(format!(
            "CUDA library folder {} cannot be read",
            dir.display()
        )));
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (n.starts_with("libnvrtc") || n.starts_with("libcublas") || n.starts_with("libcuda."))
                && n.contains(".so")
                && !n.contains(".alt.")
        })
        .collect();
    // Dependencies first: NVRTC's builtins, then cuBLASLt, then the rest.
    let rank = |p: &PathBuf| {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if n.starts_with("libnvrtc-builtins") {
            0
        } else if n.starts_with("libcublasLt") {
            1
        } else {
            2
        }
    };
    files.sort_by_key(|p| (rank(p), p.clone()));
    let mut held = PRELOADED.lock().unwrap_or_else(|e| e.into_inner());
    let mut n = 0;
    for f in files {
        // SAFETY: loading a shared library runs its initialisers; these are NVIDIA's CUDA
        // libraries named by the caller's folder, the same ones cudarc would load by name.
        let lib = unsafe { libloading::Library::new(&f) }.map_err(|e| {
            TrainError::DeviceUnavailable(format!("cannot load {}: {e}", f.display()))
        })?;
        held.push(lib);
        n += 1;
    }
    Ok(n)
}

fn preload_from_env() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    let r = DONE.get_or_init(|| match std::env::var_os(LIB_DIR_ENV) {
        Some(d) => preload_cuda_libraries(Path::new(&d))
            .map(|_| ())
            .map_err(|e| match e {
                TrainError::DeviceUnavailable(m) => m,
                other => other.to_string(),
            }),
        None => Ok(()),
    });
    r.clone().map_err(TrainError::DeviceUnavailable)
}

/// Runs `f`, turning a panic inside cudarc (a library or symbol it could not load) into an
/// error.
pub(crate) fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(TrainError::DeviceUnavailable(format!("{what}: {msg}")))
        }
    }
}

/// Whether NVRTC can be opened (after [`LIB_DIR_ENV`] preloading).
pub fn nvrtc_available() -> bool {
    preload_from_env().is_ok()
        // SAFETY: only tries to open the library by its candidate names.
        && unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

fn check_libraries() -> Result<()> {
    preload_from_env()?;
    // SAFETY: each check only tries to open the library by its candidate names.
    let (drv, blas, rtc) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::cublas::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
        )
    };
    let missing: Vec<&str> = [(drv, "libcuda"), (blas, "libcublas"), (rtc, "libnvrtc")]
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, n)| *n)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(TrainError::DeviceUnavailable(format!(
            "CUDA libraries not found: {} (install the NVIDIA driver and CUDA 13 runtime \
             libraries, set LD_LIBRARY_PATH, or name their folder in {LIB_DIR_ENV})",
            missing.join(", ")
        )))
    }
}

/// Compiles [`KERNEL_SOURCE`] to PTX for `arch` (`"compute_80"`, `"compute_90"`, …).
pub fn compile_kernels(arch: &'static str) -> Result<String> {
    preload_from_env()?;
    guarded("NVRTC", || {
        // SAFETY: only tries to open the library by its candidate names.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(TrainError::DeviceUnavailable(format!(
                "libnvrtc not found (set LD_LIBRARY_PATH or {LIB_DIR_ENV})"
            )));
        }
        let opts = CompileOptions {
            arch: Some(arch),
            fmad: Some(false),
            name: Some("fmr_kernels.cu".into()),
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(KERNEL_SOURCE, opts)
            .map_err(|e| TrainError::Device(format!("NVRTC compile for {arch}: {e:?}")))?;
        Ok(ptx.to_src())
    })
}

fn arch_of(major: i32, minor: i32) -> &'static str {
    match (major, minor) {
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        (10, 0) => "compute_100",
        (12, 0) => "compute_120",
        (m, _) if m >= 9 => "compute_90",
        _ => "compute_80",
    }
}

/// A kernel argument.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg {
    /// A device pointer (0 for null).
    P(u64),
    I(i32),
    L(i64),
    F(f32),
}

/// A growable `f32` device buffer with a length (the backend's `Buf`).
#[derive(Default)]
pub struct DBuf {
    pub(crate) mem: Option<CudaSlice<f32>>,
    pub(crate) len: usize,
}

impl DBuf {
    /// Elements in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn capacity(&self) -> usize {
        self.mem.as_ref().map_or(0, |m| m.len())
    }
}

/// Element type of a GEMM operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dt {
    F32,
    Bf16,
}

/// Accumulation of a GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acc {
    /// f32 (operands of either type).
    F32,
    /// f32 accumulation with TF32 tensor-core products (f32 operands).
    Tf32,
}

/// A row-major matrix in device memory: element (i, j) at `ptr + (i·ld + j)·size`, or its
/// transpose when `t`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DMat {
    pub ptr: u64,
    pub rows: usize,
    pub cols: usize,
    pub ld: usize,
    pub t: bool,
    pub dt: Dt,
}

impl DMat {
    pub fn new(ptr: u64, rows: usize, cols: usize, dt: Dt) -> Self {
        DMat {
            ptr,
            rows,
            cols,
            ld: cols,
            t: false,
            dt,
        }
    }
    pub fn f32(ptr: u64, rows: usize, cols: usize) -> Self {
        Self::new(ptr, rows, cols, Dt::F32)
    }
    pub fn bf16(ptr: u64, rows: usize, cols: usize) -> Self {
        Self::new(ptr, rows, cols, Dt::Bf16)
    }
    pub fn t(self) -> Self {
        DMat { t: !self.t, ..self }
    }
    fn logical(&self) -> (usize, usize) {
        if self.t {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }
}

fn i32_dim(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| TrainError::config(format!("{what} = {v} exceeds cuBLAS's range")))
}

fn cuda_type(dt: Dt) -> blas_sys::cudaDataType {
    match dt {
        Dt::F32 => blas_sys::cudaDataType::CUDA_R_32F,
        Dt::Bf16 => blas_sys::cudaDataType::CUDA_R_16BF,
    }
}

/// Batch strides (elements) of a strided-batched GEMM.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strides {
    pub count: usize,
    pub a: usize,
    pub b: usize,
    pub c: usize,
}

/// One GPU with the trainer's kernels loaded.
pub(crate) struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    blas: CudaBlas,
    funcs: HashMap<&'static str, CudaFunction>,
    pub name: String,
}

impl Gpu {
    /// Opens device `ordinal`, compiles and loads the kernels.
    pub fn new(ordinal: usize) -> Result<Gpu> {
        check_libraries()?;
        guarded("CUDA", || {
            let ctx = CudaContext::new(ordinal).map_err(|e| {
                TrainError::DeviceUnavailable(format!("CUDA device {ordinal}: {e:?}"))
            })?;
            // One stream: ordering on it is the only synchronisation needed.
            // SAFETY: every buffer of this crate is used on `stream` only.
            unsafe { ctx.disable_event_tracking() };
            let stream = ctx.default_stream();
            let blas = CudaBlas::new(stream.clone()).map_err(|e| dev_err("cuBLAS init", e))?;
            let (major, minor) = ctx
                .compute_capability()
                .map_err(|e| dev_err("compute capability", e))?;
            if major < 8 {
                return Err(TrainError::DeviceUnavailable(format!(
                    "GPU of compute capability {major}.{minor}: bf16 GEMMs need 8.0 or newer"
                )));
            }
            let ptx = compile_kernels(arch_of(major, minor))?;
            let module = ctx
                .load_module(Ptx::from_src(ptx))
                .map_err(|e| dev_err("loading the kernel module", e))?;
            let mut funcs = HashMap::new();
            for name in KERNEL_NAMES {
                let f = module
                    .load_function(name)
                    .map_err(|e| dev_err(&format!("kernel {name}"), e))?;
                funcs.insert(name, f);
            }
            let name = ctx.name().unwrap_or_else(|_| "CUDA device".into());
            Ok(Gpu {
                ctx,
                stream,
                blas,
                funcs,
                name,
            })
        })
    }

    /// Launches kernel `name` with one thread per element of `n` (grid-stride kernels).
    pub fn launch_n(&self, name: &str, n: usize, args: &[Arg]) -> Result<()> {
        let blocks = n.div_ceil(256).clamp(1, 65_535 * 8) as u32;
        self.launch(name, (blocks, 256), args)
    }

    /// Launches kernel `name` with one warp per row of `rows` (8 warps per block).
    pub fn launch_rows(&self, name: &str, rows: usize, args: &[Arg]) -> Result<()> {
        let blocks = rows.div_ceil(8).max(1);
        let blocks = u32::try_from(blocks)
            .map_err(|_| TrainError::config(format!("{rows} rows exceed one launch")))?;
        self.launch(name, (blocks, 256), args)
    }

    fn launch(&self, name: &str, (grid, block): (u32, u32), args: &[Arg]) -> Result<()> {
        let f = self
            .funcs
            .get(name)
            .ok_or_else(|| TrainError::Device(format!("no kernel {name}")))?;
        let mut b = self.stream.launch_builder(f);
        for a in args {
            match a {
                Arg::P(p) => b.arg(p),
                Arg::I(v) => b.arg(v),
                Arg::L(v) => b.arg(v),
                Arg::F(v) => b.arg(v),
            };
        }
        let cfg = LaunchConfig {
            grid_dim: (grid, 1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: each call site passes the argument list of the kernel's C signature (same
        // order, pointer or scalar types of the same width), with device pointers to buffers
        // of at least the sizes the kernel indexes; all work is ordered on one stream.
        unsafe { b.launch(cfg) }
            .map(|_| ())
            .map_err(|e| dev_err(&format!("launch {name}"), e))
    }

    /// A zeroed device array.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, n: usize) -> Result<CudaSlice<T>> {
        self.stream
            .alloc_zeros::<T>(n.max(1))
            .map_err(|e| dev_err(&format!("allocating {n} elements"), e))
    }

    /// Copies host data to a new device array.
    pub fn upload<T: DeviceRepr>(&self, v: &[T]) -> Result<CudaSlice<T>> {
        if v.is_empty() {
            return Err(TrainError::config("empty upload"));
        }
        self.stream
            .clone_htod(v)
            .map_err(|e| dev_err("host-to-device copy", e))
    }

    /// Copies host data into an existing device array (`dst.len() >= v.len()`).
    pub fn write<T: DeviceRepr>(&self, v: &[T], dst: &mut CudaSlice<T>) -> Result<()> {
        if v.is_empty() {
            return Ok(());
        }
        let mut view = dst.slice_mut(..v.len());
        self.stream
            .memcpy_htod(v, &mut view)
            .map_err(|e| dev_err("host-to-device copy", e))
    }

    /// Copies the first `n` elements of a device array to the host.
    pub fn download<T: DeviceRepr + Default + Clone>(
        &self,
        src: &CudaSlice<T>,
        n: usize,
    ) -> Result<Vec<T>> {
        let mut out = vec![T::default(); n];
        if n > 0 {
            self.stream
                .memcpy_dtoh(&src.slice(..n), &mut out)
                .map_err(|e| dev_err("device-to-host copy", e))?;
            self.sync()?;
        }
        Ok(out)
    }

    /// Waits for all queued work and reports any asynchronous error.
    pub fn sync(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| dev_err("synchronize", e))
    }

    /// Free and total device memory, bytes.
    pub fn mem_info(&self) -> Result<(usize, usize)> {
        self.ctx
            .mem_get_info()
            .map_err(|e| dev_err("memory info", e))
    }

    /// The raw device address of an array.
    pub fn ptr<T>(&self, s: &CudaSlice<T>) -> u64 {
        let (p, _sync) = s.device_ptr(&self.stream);
        p
    }

    /// The raw address of a buffer (0 when it has never been sized).
    pub fn bptr(&self, b: &DBuf) -> u64 {
        b.mem.as_ref().map_or(0, |m| self.ptr(m))
    }

    /// Sets the length of `b` to `n`, growing its storage when needed.
    pub fn resize(&self, b: &mut DBuf, n: usize) -> Result<()> {
        if b.capacity() < n {
            b.mem = None;
            b.mem = Some(self.zeros::<f32>(n)?);
        }
        b.len = n;
        Ok(())
    }

    /// `C = alpha · op(A) · op(B) + beta · C` on row-major matrices (see [`DMat`]); `c` is
    /// never transposed. `batch` runs `count` products at the given element strides.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        alpha: f32,
        a: DMat,
        b: DMat,
        beta: f32,
        c: DMat,
        acc: Acc,
        batch: Option<Strides>,
    ) -> Result<()> {
        let (m, k) = a.logical();
        let (k2, n) = b.logical();
        if k != k2 || (c.rows, c.cols) != (m, n) || c.t {
            return Err(TrainError::shape(
                "device GEMM",
                (m, k, n),
                (k2, c.rows, c.cols),
            ));
        }
        if m == 0 || n == 0 {
            return Ok(());
        }
        // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: swap the operands.
        let op = |t: bool| {
            if t {
                blas_sys::cublasOperation_t::CUBLAS_OP_T
            } else {
                blas_sys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        let compute = match (acc, a.dt) {
            (Acc::Tf32, Dt::F32) => blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32,
            _ => blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
        };
        let (mi, ni, ki) = (i32_dim(n, "n")?, i32_dim(m, "m")?, i32_dim(k, "k")?);
        let (lda, ldb, ldc) = (
            i32_dim(b.ld, "ld")?,
            i32_dim(a.ld, "ld")?,
            i32_dim(c.ld, "ld")?,
        );
        let alpha_p = &alpha as *const f32 as *const std::ffi::c_void;
        let beta_p = &beta as *const f32 as *const std::ffi::c_void;
        let algo = blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT;
        let r = match batch {
            None => {
                // SAFETY: the shapes, leading dimensions and pointers describe device arrays
                // the caller sized for them (checked shapes above); alpha/beta are host f32
                // values living across the call; the handle is bound to this stream.
                unsafe {
                    blas_result::gemm_ex(
                        *self.blas.handle(),
                        op(b.t),
                        op(a.t),
                        mi,
                        ni,
                        ki,
                        alpha_p,
                        b.ptr as *const std::ffi::c_void,
                        cuda_type(b.dt),
                        lda,
                        a.ptr as *const std::ffi::c_void,
                        cuda_type(a.dt),
                        ldb,
                        beta_p,
                        c.ptr as *mut std::ffi::c_void,
                        cuda_type(c.dt),
                        ldc,
                        compute,
                        algo,
                    )
                }
            }
            Some(s) => {
                let count = i32_dim(s.count, "batch count")?;
                // SAFETY: as above, for `count` products whose operands lie at the given
                // element strides inside arrays the caller sized for all of them.
                unsafe {
                    blas_result::gemm_strided_batched_ex(
                        *self.blas.handle(),
                        op(b.t),
                        op(a.t),
                        mi,
                        ni,
                        ki,
                        alpha_p,
                        b.ptr as *const std::ffi::c_void,
                        cuda_type(b.dt),
                        lda,
                        s.b as i64,
                        a.ptr as *const std::ffi::c_void,
                        cuda_type(a.dt),
                        ldb,
                        s.a as i64,
                        beta_p,
                        c.ptr as *mut std::ffi::c_void,
                        cuda_type(c.dt),
                        ldc,
                        s.c as i64,
                        count,
                        compute,
                        algo,
                    )
                }
            }
        };
        r.map_err(|e| dev_err("cuBLAS GEMM", e))
    }
}
