//! The run loop shared by both stages: steps until the plan, the time limit, a cancel or the
//! progress callback says stop; checkpoints every `checkpoint_every` steps; final artefacts.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::chart::{write_chart, Series};
use super::grpo::RolloutRecord;
use super::metrics::{read_jsonl_through, StepMetrics, StepOnly};
use super::trainer::{Stage, Trainer, CHART_FILE};
use crate::error::{Error, ErrorCode, Result};

/// Why [`Trainer::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// `max_steps` (or the SFT epochs) done.
    Finished,
    /// `max_minutes` reached.
    TimeLimit,
    /// The progress callback returned false.
    StoppedByCallback,
}

const ROLLOUTS_FILE: &str = "rollouts.jsonl";

impl Trainer {
    /// Runs steps of this trainer's stage until done. After each step `progress` sees its
    /// metrics (return false to stop cleanly). A set `cancel` flag stops within a step (the
    /// step is discarded) and returns [`ErrorCode::Cancelled`]; a checkpoint of the last
    /// finished step is written either way, so nothing finished is lost.
    pub fn run(
        &mut self,
        progress: &mut dyn FnMut(&StepMetrics) -> bool,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Result<RunEnd> {
        if self.stage == Stage::Grpo && self.planned_steps == 0 && self.cfg.max_minutes.is_none() {
            return Err(Error::new(
                ErrorCode::InvalidConfig,
                "a GRPO run needs max_steps or max_minutes",
            ));
        }
        if self.opt.step == 0 {
            self.truncate_rollouts(0)?;
            if self.stage == Stage::Sft
                && !self.validation.is_empty()
                && self.metrics.rows().is_empty()
            {
                // Step 0: the validation loss before any update, the start of the curve.
                let m = StepMetrics {
                    step: 0,
                    stage: Stage::Sft.as_str().into(),
                    val_loss: Some(self.validation_loss()?),
                    lr: self.opt.current_lr() as f64,
                    elapsed_s: self.elapsed_s(),
                    ..Default::default()
                };
                self.metrics.append(m)?;
            }
        }
        let every = self.cfg.checkpoint_every;
        let end = loop {
            if self.planned_steps > 0 && self.opt.step >= self.planned_steps {
                break RunEnd::Finished;
            }
            if let Some(m) = self.cfg.max_minutes {
                if self.elapsed_s() >= m * 60.0 {
                    break RunEnd::TimeLimit;
                }
            }
            if cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                self.save_checkpoint()?;
                return Err(Error::new(ErrorCode::Cancelled, "run cancelled"));
            }
            let r = match self.stage {
                Stage::Sft => self.sft_step(None),
                Stage::Grpo => self.grpo_step(None, cancel.clone()).map(|o| o.metrics),
            };
            let m = match r {
                Ok(m) => m,
                Err(e) => {
                    if e.code() == ErrorCode::Cancelled {
                        self.save_checkpoint()?;
                    }
                    return Err(e);
                }
            };
            if every > 0 && m.step % every == 0 {
                self.save_checkpoint()?;
                if self.cfg.keep_checkpoints {
                    self.save_step_checkpoint()?;
                }
            }
            if !progress(&m) {
                break RunEnd::StoppedByCallback;
            }
        };
        self.save_outputs()?;
        Ok(end)
    }

    /// Appends a step's rollouts to `rollouts.jsonl`.
    pub(super) fn append_rollouts(&self, records: &[RolloutRecord]) -> Result<()> {
        let path = self.cfg.out_dir.join(ROLLOUTS_FILE);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::new(ErrorCode::Io, format!("{}: {e}", path.display())))?;
        let mut buf = String::new();
        for r in records {
            buf += &serde_json::to_string(r)?;
            buf.push('\n');
        }
        f.write_all(buf.as_bytes())
            .map_err(|e| Error::new(ErrorCode::Io, format!("{}: {e}", path.display())))
    }

    /// Keeps the rollouts of steps `<= keep_through` (called on resume and on a fresh start).
    pub(super) fn truncate_rollouts(&self, keep_through: u64) -> Result<()> {
        let path = self.cfg.out_dir.join(ROLLOUTS_FILE);
        if !path.is_file() {
            return Ok(());
        }
        let mut kept = String::new();
        for (line, _) in read_jsonl_through(&path, keep_through, |r: &StepOnly| r.step)? {
            kept += &line;
            kept.push('\n');
        }
        crate::train::atomic::write_bytes_atomic(&path, kept.as_bytes()).map_err(Error::from)
    }
}

/// Draws the run's chart (`out_dir/chart.png`): SFT → training and validation loss; GRPO →
/// reward, accuracy and mean completion tokens, against the step.
pub fn write_run_chart(t: &Trainer) -> Result<()> {
    chart_from_metrics(
        t.metrics().rows(),
        t.stage(),
        &t.config().out_dir.join(CHART_FILE),
    )
}

/// Draws the chart of a stage from metrics rows.
pub fn chart_from_metrics(rows: &[StepMetrics], stage: Stage, path: &Path) -> Result<()> {
    let pts = |f: &dyn Fn(&StepMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| f(r).map(|y| (r.step as f64, y)))
            .collect()
    };
    type Panel<'a> = (&'a str, Vec<(f64, f64)>);
    let (title, data): (&str, Vec<Panel<'_>>) = match stage {
        Stage::Sft => (
            "SFT",
            vec![
                ("training loss (nats/token)", pts(&|r| Some(r.loss))),
                ("validation loss (nats/token)", pts(&|r| r.val_loss)),
            ],
        ),
        Stage::Grpo => (
            "GRPO",
            vec![
                ("reward (mean)", pts(&|r| Some(r.reward.mean))),
                ("accuracy", pts(&|r| Some(r.accuracy))),
                (
                    "completion tokens (mean)",
                    pts(&|r| Some(r.completion_tokens_mean)),
                ),
            ],
        ),
    };
    let series: Vec<Series<'_>> = data
        .iter()
        .map(|(name, p)| Series { name, points: p })
        .collect();
    write_chart(path, title, "step", &series)
        .map_err(|e| Error::new(ErrorCode::Io, format!("chart {}: {e}", path.display())))
}
