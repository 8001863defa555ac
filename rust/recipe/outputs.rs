//! A run's final outputs: checkpoint, PEFT and GGUF adapters, and the chart when asked for.

use std::path::Path;

use super::chart::{write_chart, Series};
use super::files::{ADAPTER_DIR, ADAPTER_GGUF, CHART_FILE};
use super::metrics::StepMetrics;
use super::trainer::{Stage, Trainer};
use crate::error::{Error, ErrorCode, Result};

impl Trainer {
    /// Writes the final artefacts: checkpoint, PEFT adapter, GGUF adapter, and the chart when
    /// the configuration has `chart`.
    pub fn save_outputs(&self) -> Result<()> {
        self.save_checkpoint()?;
        self.save_peft(&self.cfg.out_dir.join(ADAPTER_DIR))?;
        self.save_gguf(&self.cfg.out_dir.join(ADAPTER_GGUF))?;
        if self.cfg.chart.is_some() {
            write_run_chart(self)?;
        }
        Ok(())
    }
}

/// Draws the run's chart (`out_dir/chart.png`): SFT → training and validation loss; GRPO →
/// reward, accuracy and mean completion tokens, against the step.
fn write_run_chart(t: &Trainer) -> Result<()> {
    let font = t.cfg.chart.as_ref().and_then(|c| c.font.as_deref());
    chart_from_metrics(
        t.metrics().rows(),
        t.stage(),
        &t.config().out_dir.join(CHART_FILE),
        font,
    )
}

/// Draws the chart of a stage from metrics rows (text with the TrueType `font`, if given).
pub fn chart_from_metrics(
    rows: &[StepMetrics],
    stage: Stage,
    path: &Path,
    font: Option<&Path>,
) -> Result<()> {
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
    write_chart(path, title, "step", &series, font)
        .map_err(|e| Error::new(ErrorCode::Io, format!("chart {}: {e}", path.display())))
}
