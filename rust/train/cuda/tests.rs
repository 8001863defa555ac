//! Checks of the CUDA backend that need no GPU: every kernel compiles with NVRTC for the
//! target architectures, and a machine without the CUDA driver gets an error, not a panic.
//! (Numerical checks against the CPU backend run on a GPU: scripts/device/train_check.sh.)

use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::train::weights::{write_random_gguf, Arch, RandomModelSpec};

/// Folder of libnvrtc: `$FMR_NVRTC_DIR`, else the wheel scripts/setup.sh unpacks under the
/// target directory.
fn nvrtc_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("FMR_NVRTC_DIR") {
        return PathBuf::from(d);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("nvrtc/nvidia/cu13/lib")
}

fn load_nvrtc() {
    if nvrtc_available() {
        return;
    }
    let dir = nvrtc_dir();
    assert!(
        dir.join("libnvrtc.so.13").is_file(),
        "libnvrtc not found in {} (run scripts/setup.sh, or set FMR_NVRTC_DIR to the folder \
         holding libnvrtc.so.13)",
        dir.display()
    );
    let n = preload_cuda_libraries(&dir).expect("preload NVRTC");
    assert!(
        n >= 2,
        "expected libnvrtc and its builtins in {}",
        dir.display()
    );
    assert!(
        nvrtc_available(),
        "NVRTC still not loadable after preloading"
    );
}

#[test]
fn every_kernel_compiles_for_sm80_and_sm90() {
    load_nvrtc();
    for (arch, target) in [("compute_80", "sm_80"), ("compute_90", "sm_90")] {
        let ptx = compile_kernels(arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
        assert!(
            ptx.contains(&format!(".target {target}")),
            "{arch}: PTX for another target"
        );
        for name in KERNEL_NAMES {
            assert!(
                ptx.contains(&format!(".entry {name}(")),
                "{arch}: kernel {name} missing from the PTX"
            );
        }
        let entries = ptx.matches(".entry ").count();
        assert_eq!(
            entries,
            KERNEL_NAMES.len(),
            "{arch}: KERNEL_NAMES must list every kernel of kernels.cu"
        );
    }
}

#[test]
fn a_kernel_error_is_reported_not_panicked() {
    load_nvrtc();
    // An unknown architecture makes NVRTC fail: the error must come back as a value.
    let err = compile_kernels("compute_1").unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::Device(_) | TrainError::DeviceUnavailable(_)
        ),
        "{err}"
    );
}

#[test]
fn without_a_cuda_driver_opening_the_gpu_is_an_error() {
    // SAFETY: only tries to open the library by its candidate names.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        return; // a GPU machine: covered by the device checks
    }
    let spec = RandomModelSpec {
        seed: 3,
        ..RandomModelSpec::tiny(Arch::Qwen2)
    };
    let p = crate::train::tests::support::scratch_dir().join("cuda-absent-tiny.gguf");
    write_random_gguf(&spec, &p).unwrap();
    let model = Arc::new(GgufModel::open(&p).unwrap());
    match CudaTransformer::new(model, &CudaOptions::default()) {
        Err(TrainError::DeviceUnavailable(m)) => assert!(m.contains("libcuda"), "{m}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a GPU on a machine without libcuda"),
    }
}
