//! Per-step metrics of a run, written as JSONL (`metrics.jsonl`) and CSV (`metrics.csv`) in the
//! run folder. On resume, rows after the checkpoint's step are dropped so the files continue
//! exactly where the checkpoint left off.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};
use crate::train::atomic::write_bytes_atomic;

/// Mean and (population) standard deviation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    pub mean: f64,
    pub std: f64,
}

impl MeanStd {
    pub fn of(xs: &[f64]) -> MeanStd {
        if xs.is_empty() {
            return MeanStd::default();
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        MeanStd {
            mean,
            std: var.sqrt(),
        }
    }
}

/// One optimizer step. Fields that do not apply to a stage are 0 (SFT has no rewards; GRPO has
/// no validation loss).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Optimizer steps taken after this one (1-based).
    pub step: u64,
    /// "sft" or "grpo".
    pub stage: String,
    /// Training loss of the step.
    pub loss: f64,
    /// SFT: validation loss when it was measured at this step.
    pub val_loss: Option<f64>,
    /// GRPO: total reward and each component.
    pub reward: MeanStd,
    pub reward_format: MeanStd,
    pub reward_cosine: MeanStd,
    pub reward_length: MeanStd,
    pub reward_accuracy: MeanStd,
    pub reward_custom: MeanStd,
    /// GRPO: the length rewards beyond the paper (0 when unweighted).
    #[serde(default)]
    pub reward_shorter_better: MeanStd,
    #[serde(default)]
    pub reward_laser: MeanStd,
    #[serde(default)]
    pub reward_overlong: MeanStd,
    /// Fraction of completions the verifier counted correct.
    pub accuracy: f64,
    /// Fraction of completions with a boxed answer (format reward 1).
    pub format_rate: f64,
    /// Completion length in tokens (GRPO) or example length (SFT).
    pub completion_tokens_mean: f64,
    pub completion_tokens_max: usize,
    /// Fraction of completions that hit `max_completion_tokens`.
    pub truncated_fraction: f64,
    /// Fraction of loss tokens where the clipped ratio was taken.
    pub clip_fraction: f64,
    /// GRPO: fraction of loss tokens clipped from below (ratio < 1 − ε, A < 0), from above
    /// (ratio > 1 + ε_high, A > 0), and either (TRL's `clip_ratio/*`; 0 with one update per
    /// batch of rollouts).
    #[serde(default)]
    pub clip_ratio_low: f64,
    #[serde(default)]
    pub clip_ratio_high: f64,
    #[serde(default)]
    pub clip_ratio_region: f64,
    /// GRPO: mean entropy (nats) of the trained model's next-token distributions over loss
    /// tokens.
    #[serde(default)]
    pub entropy: Option<f64>,
    /// GRPO: fraction of groups whose completions all got the same reward.
    #[serde(default)]
    pub zero_std_fraction: f64,
    /// GRPO: mean |sampler log-prob − trainer log-prob| over loss tokens (how far llama.cpp's
    /// quantized sampling is from the policy being trained; sampling temperature 1 only).
    #[serde(default)]
    pub rollout_logprob_gap: Option<f64>,
    /// Mean k3 KL to the reference model over loss tokens.
    pub kl: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub lr: f64,
    /// Seconds spent generating, scoring, and in forward/backward + optimizer.
    pub time_rollout_s: f64,
    pub time_scoring_s: f64,
    pub time_training_s: f64,
    /// Generated tokens per second of rollout time (GRPO).
    pub rollout_tokens_per_s: f64,
    /// Trained tokens per second of training time.
    pub train_tokens_per_s: f64,
    /// Wall seconds since the run (or its first segment) started.
    pub elapsed_s: f64,
}

const CSV_COLUMNS: [&str; 42] = [
    "step",
    "stage",
    "loss",
    "val_loss",
    "reward_mean",
    "reward_std",
    "format_mean",
    "format_std",
    "cosine_mean",
    "cosine_std",
    "length_mean",
    "length_std",
    "accuracy_reward_mean",
    "accuracy_reward_std",
    "custom_mean",
    "custom_std",
    "shorter_better_mean",
    "shorter_better_std",
    "laser_mean",
    "laser_std",
    "overlong_mean",
    "overlong_std",
    "accuracy",
    "format_rate",
    "completion_tokens_mean",
    "completion_tokens_max",
    "truncated_fraction",
    "clip_fraction",
    "clip_ratio_low",
    "clip_ratio_high",
    "clip_ratio_region",
    "entropy",
    "zero_std_fraction",
    "rollout_logprob_gap",
    "kl",
    "grad_norm",
    "lr",
    "time_rollout_s",
    "time_scoring_s",
    "time_training_s",
    "rollout_tokens_per_s",
    "train_tokens_per_s",
];

impl StepMetrics {
    fn csv_row(&self) -> String {
        let f = |x: f64| format!("{x:.6}");
        let mut cells = vec![self.step.to_string(), self.stage.clone(), f(self.loss)];
        cells.push(self.val_loss.map(f).unwrap_or_default());
        for m in [
            self.reward,
            self.reward_format,
            self.reward_cosine,
            self.reward_length,
            self.reward_accuracy,
            self.reward_custom,
            self.reward_shorter_better,
            self.reward_laser,
            self.reward_overlong,
        ] {
            cells.push(f(m.mean));
            cells.push(f(m.std));
        }
        cells.extend([
            f(self.accuracy),
            f(self.format_rate),
            f(self.completion_tokens_mean),
            self.completion_tokens_max.to_string(),
            f(self.truncated_fraction),
            f(self.clip_fraction),
            f(self.clip_ratio_low),
            f(self.clip_ratio_high),
            f(self.clip_ratio_region),
            self.entropy.map(f).unwrap_or_default(),
            f(self.zero_std_fraction),
            self.rollout_logprob_gap.map(f).unwrap_or_default(),
            f(self.kl),
            f(self.grad_norm),
            format!("{:e}", self.lr),
            f(self.time_rollout_s),
            f(self.time_scoring_s),
            f(self.time_training_s),
            f(self.rollout_tokens_per_s),
            f(self.train_tokens_per_s),
        ]);
        debug_assert_eq!(cells.len(), CSV_COLUMNS.len());
        cells.join(",")
    }
}

/// Appends metrics rows to `metrics.jsonl` and `metrics.csv` in a folder.
///
/// Each row is flushed when written, so a killed run keeps every finished step's metrics.
pub struct MetricsLog {
    jsonl: PathBuf,
    csv: PathBuf,
    rows: Vec<StepMetrics>,
}

pub(super) fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::Io, format!("{}: {e}", path.display()))
}

/// A JSONL row reduced to its `step` (for logs whose other fields are not needed).
#[derive(Deserialize)]
pub(super) struct StepOnly {
    pub step: u64,
}

/// The rows of a per-step JSONL log, parsed as `T`, whose `step_of` is at most `keep_through`,
/// each with its original line. Reading stops at the first line that does not parse: a line
/// cut by a kill mid-write is dropped with everything after it. A missing file has no rows.
pub(super) fn read_jsonl_through<T: serde::de::DeserializeOwned>(
    path: &Path,
    keep_through: u64,
    step_of: impl Fn(&T) -> u64,
) -> Result<Vec<(String, T)>> {
    let mut rows = Vec::new();
    if !path.is_file() {
        return Ok(rows);
    }
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    for line in BufReader::new(f).lines() {
        let line = line.map_err(|e| io_err(path, e))?;
        let Ok(row) = serde_json::from_str::<T>(&line) else {
            break;
        };
        if step_of(&row) <= keep_through {
            rows.push((line, row));
        }
    }
    Ok(rows)
}

impl MetricsLog {
    /// Opens the log in `dir`, keeping existing rows with `step <= keep_through` (the step of
    /// the checkpoint being resumed; 0 for a fresh run) and rewriting both files to match.
    pub fn open(dir: &Path, keep_through: u64) -> Result<MetricsLog> {
        let jsonl = dir.join("metrics.jsonl");
        let csv = dir.join("metrics.csv");
        let rows = if keep_through > 0 {
            read_jsonl_through(&jsonl, keep_through, |m: &StepMetrics| m.step)?
                .into_iter()
                .map(|(_, row)| row)
                .collect()
        } else {
            Vec::new()
        };
        let log = MetricsLog { jsonl, csv, rows };
        log.rewrite()?;
        Ok(log)
    }

    fn rewrite(&self) -> Result<()> {
        let mut j = String::new();
        let mut c = CSV_COLUMNS.join(",") + "\n";
        for r in &self.rows {
            j += &serde_json::to_string(r)?;
            j.push('\n');
            c += &r.csv_row();
            c.push('\n');
        }
        write_bytes_atomic(&self.jsonl, j.as_bytes()).map_err(Error::from)?;
        write_bytes_atomic(&self.csv, c.as_bytes()).map_err(Error::from)
    }

    /// Appends one row to both files.
    pub fn append(&mut self, m: StepMetrics) -> Result<()> {
        for (path, line) in [
            (&self.jsonl, serde_json::to_string(&m)?),
            (&self.csv, m.csv_row()),
        ] {
            let mut f = OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(|e| io_err(path, e))?;
            writeln!(f, "{line}").map_err(|e| io_err(path, e))?;
        }
        self.rows.push(m);
        Ok(())
    }

    /// Keeps the first `n` rows and rewrites both files from them (which also drops a line a
    /// failed append left in one file).
    pub(crate) fn truncate(&mut self, n: usize) -> Result<()> {
        self.rows.truncate(n);
        self.rewrite()
    }

    /// Every row of this run so far (resumed rows included).
    pub fn rows(&self) -> &[StepMetrics] {
        &self.rows
    }

    pub fn jsonl_path(&self) -> &Path {
        &self.jsonl
    }

    pub fn csv_path(&self) -> &Path {
        &self.csv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_keeps_rows_through_the_checkpoint_and_drops_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("fmr-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = MetricsLog::open(&dir, 0).unwrap();
        for s in 1..=5 {
            log.append(StepMetrics {
                step: s,
                stage: "sft".into(),
                loss: s as f64,
                ..Default::default()
            })
            .unwrap();
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join("metrics.jsonl"))
            .unwrap();
        write!(f, "{{\"step\":6,\"sta").unwrap();
        let log = MetricsLog::open(&dir, 3).unwrap();
        assert_eq!(log.rows().len(), 3);
        let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.lines().next().unwrap().starts_with("step,stage,loss"));
        assert_eq!(MetricsLog::open(&dir, 0).unwrap().rows().len(), 0);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn mean_std() {
        let m = MeanStd::of(&[1.0, 3.0]);
        assert_eq!((m.mean, m.std), (2.0, 1.0));
        assert_eq!(MeanStd::of(&[]), MeanStd::default());
    }
}
