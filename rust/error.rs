//! The one error type of the library.
//!
//! Every fallible operation returns [`Error`], which carries a stable [`ErrorCode`] (the same
//! numbers cross the C ABI as `fmr_error_code`) and a human-readable message.

use std::fmt;

/// Stable error categories. Values are part of the C ABI: never renumber or reuse one.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A parameter was out of range, NULL where not allowed, or otherwise invalid.
    InvalidArgument = 1,
    /// Text that must be UTF-8 was not.
    InvalidUtf8 = 2,
    /// A file could not be found or read/written.
    Io = 3,
    /// A model file is missing, corrupt or of an unsupported kind.
    ModelLoad = 4,
    /// The context cannot hold the prompt plus the requested generation.
    ContextTooSmall = 5,
    /// llama.cpp failed while evaluating a batch.
    Decode = 6,
    /// The operation was cancelled by the caller (flag or callback).
    Cancelled = 7,
    /// JSON parameters were malformed or held unknown keys.
    InvalidConfig = 8,
    /// An index was outside the valid range.
    OutOfRange = 9,
    /// A Rust panic was caught at the C boundary.
    Panic = 10,
    /// An internal invariant failed (a bug in fmr).
    Internal = 11,
    /// An adapter file is missing, corrupt or does not match the model.
    AdapterLoad = 12,
    /// The requested feature was not compiled in or is unavailable on this machine.
    Unsupported = 13,
    /// A model, adapter or computation produced NaN or infinite numbers (logits, loss,
    /// gradients or weights); the message names where.
    NonFinite = 14,
    /// A host callback reported failure (a reward callback returned false, or a language
    /// binding's callback raised); the operation changed nothing.
    CallbackFailed = 15,
    /// The handle is in use by another call (one call at a time on a non-const handle; a
    /// callback may not call back into the handle that runs it).
    Busy = 16,
    /// Not enough device or host memory for a model or a context; the message names what was
    /// needed and what was free.
    OutOfMemory = 17,
}

/// An error with a stable code and a message meant for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    message: String,
}

impl Error {
    /// Builds an error from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Shorthand for [`ErrorCode::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// The stable category of this error.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message, without the code.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::new(
            ErrorCode::InvalidConfig,
            format!("invalid JSON parameters: {e}"),
        )
    }
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;
