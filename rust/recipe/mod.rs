//! The two-stage recipe: SFT and GRPO loops over JSONL data — rollouts → rewards → update →
//! adapter swap — with checkpoints and resume, per-step metrics (JSONL, CSV) and, when asked
//! for, a PNG chart.

pub(crate) mod chart;
pub(crate) mod compute;
pub(crate) mod config;
pub(crate) mod data;
pub(crate) mod eval;
pub(crate) mod files;
pub(crate) mod grpo;
pub(crate) mod metrics;
pub(crate) mod outputs;
pub(crate) mod rollout_log;
pub(crate) mod run;
pub(crate) mod sft;
pub(crate) mod trainer;

pub use config::{ChartOptions, DataConfig, GrpoOptions, RunConfig, SftOptions, PRESETS};
pub use data::{load_problems, DataCursor, DataOrder, Problem};
pub use eval::{evaluate, EvalReport, EvalRow, Proportion};
pub use files::{
    ADAPTER_DIR, ADAPTER_GGUF, CHART_FILE, CHECKPOINT_FILE, ROLLOUTS_FILE, STEP_CHECKPOINT_DIR,
};
pub use grpo::GrpoStepOutput;
pub use metrics::{MeanStd, MetricsLog, StepMetrics};
pub use outputs::chart_from_metrics;
pub use rollout_log::RolloutRecord;
pub use run::RunEnd;
pub use trainer::{load_engine_adapter, CustomReward, RewardRequest, Stage, Trainer};

#[cfg(test)]
mod step_tests;
