//! Where training runs.

use serde::{Deserialize, Serialize};

/// The compute device of the trainer's forward/backward and optimizer.
///
/// `Cuda` needs a build with the `cuda-train` feature and, at run time, an NVIDIA GPU of
/// compute capability 8.0 or newer with the CUDA 13 driver, cuBLAS and NVRTC libraries
/// (loaded dynamically; their absence is an error, never a crash). The first GPU is used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// Host threads (always available).
    #[default]
    Cpu,
    /// The first CUDA GPU.
    Cuda,
}

impl Device {
    /// `"cpu"` or `"cuda"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }

    /// Parses `"cpu"` or `"cuda"` (case-insensitive).
    pub fn parse(s: &str) -> Option<Device> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Some(Device::Cpu),
            "cuda" | "gpu" => Some(Device::Cuda),
            _ => None,
        }
    }

    /// Whether this build can drive the device at all (`Cuda` needs the `cuda-train`
    /// feature; whether a GPU is present is only known when it is opened).
    pub fn compiled_in(self) -> bool {
        match self {
            Device::Cpu => true,
            Device::Cuda => cfg!(feature = "cuda-train"),
        }
    }
}
