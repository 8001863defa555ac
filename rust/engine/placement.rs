//! Where a model's layers and a context's KV cache go, checked before llama.cpp allocates:
//! a GPU asked for without a usable one, a bad GPU index, or too little memory becomes an error
//! (or, with `cpu_fallback`, a CPU load with a note saying what was given up).

use serde::{Deserialize, Serialize};

use super::devices::{gpus, DeviceInfo};
use crate::error::{Error, ErrorCode, Result};

/// How a model is split over several GPUs. Values are part of the C ABI; never reused.
#[repr(u32)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitMode {
    /// Everything on `main_gpu`.
    #[default]
    None = 0,
    /// Whole layers spread over the GPUs.
    Layer = 1,
    /// Rows of each matrix spread over the GPUs.
    Row = 2,
}

const MIB: f64 = 1024.0 * 1024.0;

/// The layers to offload and, when a GPU was asked for but cannot be used, why (with
/// `cpu_fallback`: the note; without it: the error).
pub(super) struct Placement {
    pub n_gpu_layers: i32,
    pub fallback: Option<String>,
}

/// Decides where a model of `file_bytes` bytes and `layers` blocks goes.
///
/// Errors (without `cpu_fallback`): [`ErrorCode::Unsupported`] when GPU layers are asked for and
/// no GPU device is loaded; [`ErrorCode::OutOfRange`] for a `main_gpu` that is not a GPU;
/// [`ErrorCode::OutOfMemory`] when the offloaded weights do not fit the GPU memory that is free.
pub(super) fn place_model(
    n_gpu_layers: i32,
    main_gpu: i32,
    split: SplitMode,
    cpu_fallback: bool,
    file_bytes: u64,
    layers: u32,
) -> Result<Placement> {
    if n_gpu_layers < -1 {
        return Err(Error::invalid(format!(
            "n_gpu_layers must be -1 (all), 0 (none) or a count, got {n_gpu_layers}"
        )));
    }
    if n_gpu_layers == 0 {
        return Ok(Placement {
            n_gpu_layers: 0,
            fallback: None,
        });
    }
    let problem = check_gpus(&gpus(), n_gpu_layers, main_gpu, split, file_bytes, layers);
    match problem {
        None => Ok(Placement {
            n_gpu_layers,
            fallback: None,
        }),
        Some(e) if cpu_fallback => Ok(Placement {
            n_gpu_layers: 0,
            fallback: Some(format!(
                "{}; the model was loaded on the CPU instead",
                e.message()
            )),
        }),
        Some(e) => Err(e),
    }
}

/// Why the GPUs cannot take the model, if they cannot.
fn check_gpus(
    gpus: &[DeviceInfo],
    n_gpu_layers: i32,
    main_gpu: i32,
    split: SplitMode,
    file_bytes: u64,
    layers: u32,
) -> Option<Error> {
    if gpus.is_empty() {
        return Some(Error::new(
            ErrorCode::Unsupported,
            "GPU layers were asked for but no GPU device is available (no driver, or the CUDA \
             backend module libggml-cuda.so is not in the backend folder; see \
             scripts/build_cuda_backend.sh and FMR_BACKEND_DIR)",
        ));
    }
    if main_gpu < 0 || main_gpu as usize >= gpus.len() {
        return Some(Error::new(
            ErrorCode::OutOfRange,
            format!(
                "main_gpu {main_gpu} is not a GPU: {} GPU(s) available ({})",
                gpus.len(),
                gpus.iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    // Offloaded share of the weights (the file size is close to the weights' size).
    let offloaded = if n_gpu_layers < 0 || n_gpu_layers as u32 >= layers {
        1.0
    } else {
        n_gpu_layers as f64 / layers.max(1) as f64
    };
    let needed = file_bytes as f64 * offloaded;
    let (free, on) = match split {
        SplitMode::None => {
            let g = &gpus[main_gpu as usize];
            (g.memory_free as f64, g.name.clone())
        }
        SplitMode::Layer | SplitMode::Row => (
            gpus.iter().map(|g| g.memory_free as f64).sum(),
            format!("{} GPUs together", gpus.len()),
        ),
    };
    (needed > free).then(|| {
        Error::new(
            ErrorCode::OutOfMemory,
            format!(
                "the model's offloaded weights need about {:.0} MiB on {on}, {:.0} MiB is free",
                needed / MIB,
                free / MIB
            ),
        )
    })
}

/// Checks that a KV cache of `bytes` fits the memory free on `device` (the GPU that holds the
/// cache, or the host).
///
/// Errors: [`ErrorCode::OutOfMemory`] naming both figures.
pub(super) fn check_kv_fits(bytes: f64, device: &DeviceInfo, what: &str) -> Result<()> {
    if bytes > device.memory_free as f64 {
        return Err(Error::new(
            ErrorCode::OutOfMemory,
            format!(
                "{what} needs about {:.0} MiB on {}, {:.0} MiB is free",
                bytes / MIB,
                device.name,
                device.memory_free as f64 / MIB
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::devices::DeviceKind;

    fn gpu(name: &str, free_mib: u64) -> DeviceInfo {
        DeviceInfo {
            index: 1,
            name: name.into(),
            description: String::new(),
            backend: "CUDA".into(),
            kind: DeviceKind::Gpu,
            memory_total: (2 * free_mib) << 20,
            memory_free: free_mib << 20,
        }
    }

    #[test]
    fn gpu_checks_name_the_problem() {
        let gb = 1u64 << 30;
        let e = check_gpus(&[], -1, 0, SplitMode::None, gb, 24).unwrap();
        assert_eq!(e.code(), ErrorCode::Unsupported);
        let two = [gpu("CUDA0", 8000), gpu("CUDA1", 8000)];
        let e = check_gpus(&two, -1, 2, SplitMode::None, gb, 24).unwrap();
        assert_eq!(e.code(), ErrorCode::OutOfRange);
        assert!(e.message().contains("CUDA0, CUDA1"), "{e}");
        // 10 GiB on one 7.8 GiB GPU: too much; split over both: fits; half the layers: fits.
        let e = check_gpus(&two, -1, 0, SplitMode::None, 10 * gb, 24).unwrap();
        assert_eq!(e.code(), ErrorCode::OutOfMemory);
        assert!(
            e.message().contains("10240 MiB") && e.message().contains("8000 MiB"),
            "{e}"
        );
        assert!(check_gpus(&two, -1, 0, SplitMode::Layer, 10 * gb, 24).is_none());
        assert!(check_gpus(&two, 12, 0, SplitMode::None, 10 * gb, 24).is_none());
    }
}
