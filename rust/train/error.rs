//! The trainer's single error type.

use std::fmt;
use std::path::PathBuf;

/// Every fallible operation of the trainer and the adapter formats returns this error.
///
/// The `Display` text is meant for end users: it names the file, tensor or setting at fault.
#[derive(Debug)]
pub enum TrainError {
    /// A file that should exist does not.
    MissingFile(PathBuf),
    /// An I/O error while reading or writing `path`.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The GGUF file could not be parsed or lacks a required key or tensor.
    CorruptGguf { path: PathBuf, reason: String },
    /// The model architecture is not one the trainer implements.
    UnsupportedArchitecture(String),
    /// A tensor is stored in a ggml type the trainer cannot dequantize.
    UnsupportedTensorType { tensor: String, type_name: String },
    /// Two shapes that must agree do not.
    ShapeMismatch {
        what: String,
        expected: String,
        got: String,
    },
    /// A configuration value is invalid.
    BadConfig(String),
    /// An adapter or checkpoint file is malformed.
    BadAdapter { path: PathBuf, reason: String },
    /// An error reported by llama.cpp (test helpers and exports).
    Llama(String),
    /// NaN or infinite numbers where finite ones are required (weights, gradients, losses);
    /// the message says where.
    NonFinite(String),
    /// The requested compute device cannot be used here: a CUDA library is missing, no GPU,
    /// or the build lacks the `cuda-train` feature.
    DeviceUnavailable(String),
    /// A device operation failed (out of memory, a kernel launch or copy error).
    Device(String),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            TrainError::MissingFile(path)
        } else {
            TrainError::Io { path, source }
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        TrainError::CorruptGguf {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn shape(
        what: impl Into<String>,
        expected: impl fmt::Debug,
        got: impl fmt::Debug,
    ) -> Self {
        TrainError::ShapeMismatch {
            what: what.into(),
            expected: format!("{expected:?}"),
            got: format!("{got:?}"),
        }
    }

    pub(crate) fn config(msg: impl Into<String>) -> Self {
        TrainError::BadConfig(msg.into())
    }
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::MissingFile(p) => write!(f, "missing file: {}", p.display()),
            TrainError::Io { path, source } => {
                write!(f, "I/O error on {}: {source}", path.display())
            }
            TrainError::CorruptGguf { path, reason } => {
                write!(f, "corrupt GGUF {}: {reason}", path.display())
            }
            TrainError::UnsupportedArchitecture(a) => write!(f, "unsupported architecture \"{a}\""),
            TrainError::UnsupportedTensorType { tensor, type_name } => {
                write!(f, "unsupported tensor type {type_name} for tensor {tensor}")
            }
            TrainError::ShapeMismatch {
                what,
                expected,
                got,
            } => {
                write!(
                    f,
                    "shape mismatch for {what}: expected {expected}, got {got}"
                )
            }
            TrainError::BadConfig(m) => write!(f, "bad config: {m}"),
            TrainError::BadAdapter { path, reason } => {
                write!(f, "bad adapter/checkpoint {}: {reason}", path.display())
            }
            TrainError::Llama(m) => write!(f, "llama.cpp error: {m}"),
            TrainError::NonFinite(m) => write!(f, "non-finite numbers: {m}"),
            TrainError::DeviceUnavailable(m) => write!(f, "compute device unavailable: {m}"),
            TrainError::Device(m) => write!(f, "device error: {m}"),
        }
    }
}

impl std::error::Error for TrainError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TrainError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Shorthand used throughout the trainer.
pub type Result<T> = std::result::Result<T, TrainError>;

/// The crate-wide error for a trainer error: file problems → `Io`, corrupt or unsupported
/// models → `ModelLoad`, bad adapters → `AdapterLoad`, shapes and settings → `InvalidArgument`,
/// a device that cannot be used → `Unsupported`, a failing device → `Internal`.
impl From<TrainError> for crate::error::Error {
    fn from(e: TrainError) -> Self {
        use crate::error::{Error, ErrorCode};
        use TrainError as T;
        let code = match &e {
            T::MissingFile(_) | T::Io { .. } => ErrorCode::Io,
            T::CorruptGguf { .. }
            | T::UnsupportedArchitecture(_)
            | T::UnsupportedTensorType { .. } => ErrorCode::ModelLoad,
            T::ShapeMismatch { .. } | T::BadConfig(_) => ErrorCode::InvalidArgument,
            T::BadAdapter { .. } => ErrorCode::AdapterLoad,
            T::Llama(_) => ErrorCode::Internal,
            T::NonFinite(_) => ErrorCode::NonFinite,
            T::DeviceUnavailable(_) => ErrorCode::Unsupported,
            T::Device(_) => ErrorCode::Internal,
        };
        Error::new(code, e.to_string())
    }
}
