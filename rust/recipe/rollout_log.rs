//! `rollouts.jsonl`: every scored GRPO completion of a run, one JSON line each, appended per
//! step and cut back to the last finished step on resume or after a failed step.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::files::ROLLOUTS_FILE;
use super::metrics::{read_jsonl_through, StepOnly};
use crate::error::{Error, ErrorCode, Result};

/// One scored completion of a step, as logged to `rollouts.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    pub step: u64,
    /// Index of the prompt within the step (the group).
    pub group: usize,
    pub problem: String,
    pub answer: String,
    pub prompt_tokens: Vec<u32>,
    /// Generated tokens, the end-of-sequence token included when the sample emitted one.
    pub completion_tokens: Vec<u32>,
    pub text: String,
    pub finish_reason: String,
    pub reward: f64,
    pub reward_format: f64,
    pub reward_cosine: f64,
    pub reward_length: f64,
    pub reward_accuracy: f64,
    pub reward_custom: f64,
    /// Length rewards beyond the paper (0 when their weights are 0).
    #[serde(default)]
    pub reward_shorter_better: f64,
    #[serde(default)]
    pub reward_laser: f64,
    #[serde(default)]
    pub reward_overlong: f64,
    pub correct: bool,
    pub advantage: f32,
}

/// Appends a step's rollouts to `out_dir/rollouts.jsonl` in one write.
pub(super) fn append_rollouts(out_dir: &Path, records: &[RolloutRecord]) -> Result<()> {
    let path = out_dir.join(ROLLOUTS_FILE);
    let mut buf = String::new();
    for r in records {
        buf += &serde_json::to_string(r)?;
        buf.push('\n');
    }
    let io = |e: std::io::Error| Error::new(ErrorCode::Io, format!("{}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    f.write_all(buf.as_bytes()).map_err(io)
}

/// Keeps the rollouts of steps `<= keep_through` (on every start of a run, and after a failed
/// step).
pub(super) fn truncate_rollouts(out_dir: &Path, keep_through: u64) -> Result<()> {
    let path = out_dir.join(ROLLOUTS_FILE);
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
