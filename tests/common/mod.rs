//! Shared helpers for integration tests: the real test models.
#![allow(dead_code)]

use fmr::engine::{ContextParams, Model, ModelParams};
use fmr::generate::Generator;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

pub mod c_build;
pub mod gguf_edit;

/// Where `scripts/setup.sh` puts the test models: `$FMR_MODEL_DIR`, else
/// `~/.cache/fmr/models`.
pub fn model_dir() -> PathBuf {
    match std::env::var_os("FMR_MODEL_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
            .join(".cache/fmr/models"),
    }
}

/// Path of the default model; panics with the set-up command when it is missing (tests must not
/// silently skip).
pub fn smollm2_path() -> PathBuf {
    let p = model_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "test model missing: {} (run scripts/setup.sh first)",
        p.display()
    );
    p
}

/// The default model, loaded once per test binary.
pub fn smollm2() -> Arc<Model> {
    static MODEL: OnceLock<Arc<Model>> = OnceLock::new();
    MODEL
        .get_or_init(|| Arc::new(Model::load(smollm2_path(), &ModelParams::default()).unwrap()))
        .clone()
}

/// A generator on the default model with room for `n_seq` samples of `n_ctx` cells in total.
/// One decoding thread: the test harness runs two tests at once on this 2-core machine.
pub fn generator(n_ctx: u32, n_seq: u32) -> Generator {
    let cp = ContextParams {
        n_ctx,
        n_seq_max: n_seq,
        n_threads: 1,
        ..Default::default()
    };
    Generator::new(smollm2(), &cp).unwrap()
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "fmr-test-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
