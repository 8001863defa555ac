//! The run loop shared by both stages: steps until the plan, the time limit, a cancel or the
//! progress callback says stop; checkpoints every `checkpoint_every` steps; final artefacts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::metrics::StepMetrics;
use super::rollout_log::truncate_rollouts;
use super::trainer::{Stage, Trainer};
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
        // Rollouts of steps after the checkpoint (a killed run) are not part of this run.
        truncate_rollouts(&self.cfg.out_dir, self.opt.step)?;
        if self.opt.step == 0
            && self.stage == Stage::Sft
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
}
