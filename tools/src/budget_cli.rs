//! The token scheduler on the command line: `--budget-model DIR` and its companions (eval and
//! solve), and the default encoder files that `scripts/setup.sh` unpacks.

use fmr::budget::{BudgetModel, BudgetPredictor, EncoderOptions};
use fmr::engine::Model;
use fmr::generate::RolloutParams;
use std::path::PathBuf;
use std::sync::Arc;

/// Where set-up puts the ONNX sentence encoder (all-MiniLM-L6-v2, int8): `model.onnx` and
/// `tokenizer.json` under `<model dir>/minilm-l6-v2/`.
pub fn encoder_dir() -> PathBuf {
    crate::models::model_dir().join("minilm-l6-v2")
}

/// Where set-up puts ONNX Runtime's shared library (from the PyPI `onnxruntime` wheel).
pub fn onnxruntime_lib() -> PathBuf {
    crate::models::model_dir().join("onnxruntime/libonnxruntime.so.1.22.1")
}

/// The encoder options for `kind` (`prompt` or `onnx`) with set-up's files and `params`'
/// prompt settings.
pub fn default_encoder(
    kind: &str,
    params: &RolloutParams,
    threads: i32,
) -> Result<EncoderOptions, String> {
    match kind {
        "prompt" => Ok(EncoderOptions::Prompt {
            prompt: params.prompt.clone(),
            threads,
            max_tokens: 1024,
        }),
        "onnx" => Ok(EncoderOptions::Onnx {
            model: encoder_dir().join("model.onnx").display().to_string(),
            tokenizer: encoder_dir().join("tokenizer.json").display().to_string(),
            runtime: Some(onnxruntime_lib().display().to_string()),
            threads: threads.max(1) as usize,
            max_tokens: 256,
        }),
        other => EncoderOptions::from_json(other).map_err(|e| e.to_string()),
    }
}

/// `--budget-model DIR`, `--budget-encoder prompt|onnx|JSON`, `--budget-quantile Q`,
/// `--budget-margin M`.
#[derive(Clone, Debug)]
pub struct BudgetArgs {
    pub dir: Option<String>,
    pub encoder: Option<String>,
    pub quantile: f64,
    pub margin: f64,
}

impl Default for BudgetArgs {
    fn default() -> Self {
        Self {
            dir: None,
            encoder: None,
            quantile: 0.9,
            margin: 1.2,
        }
    }
}

impl BudgetArgs {
    /// Consumes `flag` (and its value from `val`) when it is one of ours.
    pub fn parse(
        &mut self,
        flag: &str,
        val: &mut dyn FnMut() -> Result<String, String>,
    ) -> Result<bool, String> {
        match flag {
            "--budget-model" => self.dir = Some(val()?),
            "--budget-encoder" => self.encoder = Some(val()?),
            "--budget-quantile" => {
                self.quantile = val()?.parse().map_err(|e| format!("{flag}: {e}"))?
            }
            "--budget-margin" => {
                self.margin = val()?.parse().map_err(|e| format!("{flag}: {e}"))?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// What the budgets come from, for people.
    pub fn describe(&self) -> String {
        format!(
            "{} (quantile {}, margin {})",
            self.dir.as_deref().unwrap_or("-"),
            self.quantile,
            self.margin
        )
    }

    /// Each problem's max_tokens (at most `params.max_tokens`), or `None` without
    /// `--budget-model`.
    pub fn predict(
        &self,
        model: &Arc<Model>,
        params: &RolloutParams,
        problems: &[&str],
        threads: i32,
    ) -> Result<Option<Vec<usize>>, String> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let head = BudgetModel::load(dir.as_ref()).map_err(|e| e.to_string())?;
        let kind = self
            .encoder
            .clone()
            .unwrap_or_else(|| head.meta().encoder.kind().to_string());
        let encoder = default_encoder(&kind, params, threads)?
            .build(Some(model.clone()))
            .map_err(|e| e.to_string())?;
        let mut p = BudgetPredictor::new(head, encoder).map_err(|e| e.to_string())?;
        let b = p
            .predict_budget(problems, self.quantile, self.margin)
            .map_err(|e| e.to_string())?;
        Ok(Some(
            b.into_iter().map(|t| t.min(params.max_tokens)).collect(),
        ))
    }
}
