//! The token scheduler: a per-problem token budget predicted from the problem text.
//!
//! A text encoder turns a problem into a feature vector — a small ONNX sentence encoder run
//! with ONNX Runtime and its `tokenizer.json` ([`OnnxEncoder`], feature `onnx`), or, with no
//! extra model, the policy model's own mean-pooled prompt hidden state from llama.cpp
//! ([`PromptEncoder`]). A ridge head, fitted by [`BudgetModel::fit`] on logged (problem,
//! completion lengths) pairs, predicts the log of a problem's mean completion length; the
//! budget for a quantile `q` adds the `q`-quantile of the out-of-fold residuals of single
//! completions and multiplies by a margin. The head is saved as `head.safetensors` (weights)
//! and `head.json` (everything else) in one folder.

mod encoder;
mod ridge;

#[cfg(feature = "onnx")]
pub use encoder::OnnxEncoder;
pub use encoder::{Encoder, EncoderOptions, EncoderSpec, PromptEncoder};
pub use ridge::{fold_spearman, spearman};

use crate::error::{Error, ErrorCode, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// One logged problem: its text and the token lengths of its completions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetExample {
    /// The problem text (as given to the encoder).
    pub problem: String,
    /// Completion lengths in tokens (at least one, each >= 1).
    pub lengths: Vec<usize>,
}

/// What a saved head records besides its weights (`head.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetMeta {
    /// Format tag, `fmr-budget-1`.
    pub format: String,
    /// The encoder the head was fitted on.
    pub encoder: EncoderSpec,
    /// Feature length.
    pub dim: usize,
    /// Intercept of the head (log tokens).
    pub bias: f64,
    /// Ridge penalty per training row, chosen by cross-validation.
    pub lambda: f64,
    /// Problems and completions it was fitted on.
    pub n_problems: usize,
    pub n_lengths: usize,
    /// Spearman ρ of the out-of-fold predictions against the problems' mean lengths, within
    /// each cross-validation fold, averaged over the folds ([`fold_spearman`]).
    pub cv_spearman: Option<f64>,
    /// Percentiles 0, 1, …, 100 of the out-of-fold residuals ln(length) − prediction of single
    /// completions.
    pub residual_percentiles: Vec<f64>,
}

const FORMAT: &str = "fmr-budget-1";

/// A fitted budget head.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetModel {
    head: ridge::Ridge,
    meta: BudgetMeta,
}

/// Folds of the cross-validation that chooses the penalty and gives the residuals.
const FOLDS: usize = 5;

impl BudgetModel {
    /// Fits a head on `features[i]` (from `encoder`) → the mean length of `examples[i]`.
    ///
    /// Errors: fewer than 2 examples, an example without lengths or with a zero length,
    /// feature rows of different lengths or non-finite values.
    pub fn fit(
        encoder: EncoderSpec,
        features: &[Vec<f32>],
        examples: &[BudgetExample],
    ) -> Result<BudgetModel> {
        if features.len() != examples.len() {
            return Err(Error::invalid("one feature row per example is needed"));
        }
        if examples
            .iter()
            .any(|e| e.lengths.is_empty() || e.lengths.contains(&0))
        {
            return Err(Error::invalid(
                "every example needs at least one completion length, each >= 1",
            ));
        }
        let y: Vec<f64> = examples.iter().map(|e| log_mean(&e.lengths)).collect();
        let (head, oof) = ridge::fit(features, &y, FOLDS)?;
        let mut residuals = Vec::new();
        for (e, p) in examples.iter().zip(&oof) {
            residuals.extend(e.lengths.iter().map(|&l| (l as f64).ln() - p));
        }
        let residual_percentiles = (0..=100)
            .map(|q| crate::generate::percentile(&residuals, q as f64).unwrap_or(0.0))
            .collect();
        let meta = BudgetMeta {
            format: FORMAT.into(),
            encoder,
            dim: features[0].len(),
            bias: head.bias,
            lambda: head.lambda,
            n_problems: examples.len(),
            n_lengths: residuals.len(),
            cv_spearman: fold_spearman(&oof, &y, FOLDS.clamp(2, examples.len())),
            residual_percentiles,
        };
        Ok(BudgetModel { head, meta })
    }

    /// What the head records.
    pub fn meta(&self) -> &BudgetMeta {
        &self.meta
    }

    /// The predicted mean completion length of a problem with features `x`, in tokens.
    pub fn predict_mean(&self, x: &[f32]) -> Result<f64> {
        self.check_dim(x)?;
        Ok(self.head.predict(x).exp())
    }

    /// The token budget of a problem with features `x`: the predicted `quantile` (0..=1) of
    /// its completion lengths × `margin`, rounded up, at least 1.
    pub fn predict_budget(&self, x: &[f32], quantile: f64, margin: f64) -> Result<usize> {
        self.check_dim(x)?;
        if !((0.0..=1.0).contains(&quantile) && margin > 0.0 && margin.is_finite()) {
            return Err(Error::invalid(format!(
                "quantile must be in [0, 1] and margin > 0, got {quantile} and {margin}"
            )));
        }
        let r = &self.meta.residual_percentiles;
        let pos = quantile * 100.0;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        let resid = r[lo] + (r[hi] - r[lo]) * (pos - lo as f64);
        let t = (self.head.predict(x) + resid).exp() * margin;
        Ok(t.ceil().clamp(1.0, 1e9) as usize)
    }

    fn check_dim(&self, x: &[f32]) -> Result<()> {
        if x.len() != self.meta.dim {
            return Err(Error::invalid(format!(
                "features of length {} given to a head fitted on {}",
                x.len(),
                self.meta.dim
            )));
        }
        Ok(())
    }

    /// Writes `head.safetensors` and `head.json` into folder `dir` (created if missing).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let io = |e: std::io::Error| Error::new(ErrorCode::Io, format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (w, m, s) = (
            bytes(&self.head.weight),
            bytes(&self.head.mean),
            bytes(&self.head.scale),
        );
        let d = self.meta.dim;
        fn view(
            b: &[u8],
            d: usize,
        ) -> std::result::Result<TensorView<'_>, safetensors::SafeTensorError> {
            TensorView::new(Dtype::F32, vec![d], b)
        }
        let tensors = vec![
            ("weight", view(&w, d).map_err(st_err)?),
            ("feature_mean", view(&m, d).map_err(st_err)?),
            ("feature_scale", view(&s, d).map_err(st_err)?),
        ];
        let meta = HashMap::from([("format".to_string(), FORMAT.to_string())]);
        let st = safetensors::serialize(tensors, &Some(meta)).map_err(st_err)?;
        std::fs::write(dir.join("head.safetensors"), st).map_err(io)?;
        let json = serde_json::to_string_pretty(&self.meta)
            .map_err(|e| Error::new(ErrorCode::Internal, e.to_string()))?;
        std::fs::write(dir.join("head.json"), json).map_err(io)
    }

    /// Reads a head written by [`BudgetModel::save`].
    pub fn load(dir: &Path) -> Result<BudgetModel> {
        let io = |p: &Path, e: std::io::Error| {
            Error::new(ErrorCode::Io, format!("{}: {e}", p.display()))
        };
        let jp = dir.join("head.json");
        let text = std::fs::read_to_string(&jp).map_err(|e| io(&jp, e))?;
        let meta: BudgetMeta = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("{}: {e}", jp.display())))?;
        if meta.format != FORMAT || meta.residual_percentiles.len() != 101 {
            return Err(Error::invalid(format!(
                "{}: not an {FORMAT} head",
                jp.display()
            )));
        }
        let sp = dir.join("head.safetensors");
        let bytes = std::fs::read(&sp).map_err(|e| io(&sp, e))?;
        let st = SafeTensors::deserialize(&bytes).map_err(st_err)?;
        let get = |name: &str| -> Result<Vec<f32>> {
            let t = st.tensor(name).map_err(st_err)?;
            if t.dtype() != Dtype::F32 || t.shape() != [meta.dim] {
                return Err(Error::invalid(format!(
                    "{}: tensor {name} must be F32 [{}]",
                    sp.display(),
                    meta.dim
                )));
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let head = ridge::Ridge {
            weight: get("weight")?,
            mean: get("feature_mean")?,
            scale: get("feature_scale")?,
            bias: meta.bias,
            lambda: meta.lambda,
        };
        Ok(BudgetModel { head, meta })
    }
}

fn st_err(e: safetensors::SafeTensorError) -> Error {
    Error::invalid(format!("safetensors: {e}"))
}

/// ln of the mean of `lengths`.
fn log_mean(lengths: &[usize]) -> f64 {
    (lengths.iter().sum::<usize>() as f64 / lengths.len() as f64).ln()
}

/// A fitted head with its encoder: problem text in, token budget out.
///
/// Thread-safety: `Send`, not `Sync` (encoding needs `&mut`).
pub struct BudgetPredictor {
    model: BudgetModel,
    encoder: Box<dyn Encoder>,
}

impl BudgetPredictor {
    /// Pairs a head with an encoder; errors when the encoder's kind or width differs from the
    /// one the head was fitted on.
    pub fn new(model: BudgetModel, encoder: Box<dyn Encoder>) -> Result<BudgetPredictor> {
        if encoder.dim() != model.meta.dim || encoder.spec().kind() != model.meta.encoder.kind() {
            return Err(Error::invalid(format!(
                "the head was fitted on a {} encoder of width {}, this encoder is {} of width {}",
                model.meta.encoder.kind(),
                model.meta.dim,
                encoder.spec().kind(),
                encoder.dim()
            )));
        }
        Ok(BudgetPredictor { model, encoder })
    }

    /// Encodes every example and fits a head.
    pub fn fit(mut encoder: Box<dyn Encoder>, examples: &[BudgetExample]) -> Result<Self> {
        let texts: Vec<&str> = examples.iter().map(|e| e.problem.as_str()).collect();
        let features = encoder.embed(&texts)?;
        let model = BudgetModel::fit(encoder.spec(), &features, examples)?;
        Ok(BudgetPredictor { model, encoder })
    }

    /// The head.
    pub fn model(&self) -> &BudgetModel {
        &self.model
    }

    /// Predicted mean completion length of each problem, in tokens.
    pub fn predict_mean(&mut self, problems: &[&str]) -> Result<Vec<f64>> {
        let f = self.encoder.embed(problems)?;
        f.iter().map(|x| self.model.predict_mean(x)).collect()
    }

    /// The token budget of each problem (see [`BudgetModel::predict_budget`]).
    pub fn predict_budget(
        &mut self,
        problems: &[&str],
        quantile: f64,
        margin: f64,
    ) -> Result<Vec<usize>> {
        let f = self.encoder.embed(problems)?;
        f.iter()
            .map(|x| self.model.predict_budget(x, quantile, margin))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_save_load_predict() {
        // Feature 0 carries the log length: the head must rank problems by it.
        let mut feats = Vec::new();
        let mut ex = Vec::new();
        for i in 0..40usize {
            let len = 20 + 7 * i;
            feats.push(vec![(len as f32).ln(), ((i * 13) % 7) as f32, 1.0]);
            ex.push(BudgetExample {
                problem: format!("p{i}"),
                lengths: vec![len, len + 4, len.saturating_sub(4).max(1)],
            });
        }
        let spec = EncoderSpec::Prompt {
            model: "test".into(),
        };
        let m = BudgetModel::fit(spec, &feats, &ex).unwrap();
        assert!(m.meta().cv_spearman.unwrap() > 0.9, "{:?}", m.meta());
        let dir = std::env::temp_dir().join(format!("fmr-budget-test-{}", std::process::id()));
        m.save(&dir).unwrap();
        let back = BudgetModel::load(&dir).unwrap();
        assert_eq!(back, m);
        let short = back.predict_budget(&feats[0], 0.9, 1.0).unwrap();
        let long = back.predict_budget(&feats[39], 0.9, 1.0).unwrap();
        assert!(short < long, "{short} {long}");
        assert!(back.predict_budget(&feats[39], 0.99, 1.0).unwrap() >= long);
        assert!(back.predict_budget(&feats[0], 0.5, 1.0).is_ok());
        assert!(back.predict_budget(&[1.0], 0.5, 1.0).is_err());
        assert!(back.predict_budget(&feats[0], 1.5, 1.0).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
