//! The two-stage recipe: SFT and GRPO loops over JSONL data — rollouts → rewards → update →
//! adapter swap — with checkpoints and resume, per-step metrics (JSONL, CSV) and a PNG chart.

pub mod chart;
pub mod config;
pub mod data;
pub mod eval;
pub mod grpo;
pub mod metrics;
pub mod run;
pub mod sft;
pub mod trainer;

pub use config::{DataConfig, GrpoOptions, RunConfig, SftOptions, PRESETS};
pub use data::{load_problems, DataCursor, DataOrder, Problem};
pub use grpo::{GrpoStepOutput, RolloutRecord};
pub use metrics::{MeanStd, MetricsLog, StepMetrics};
pub use run::{chart_from_metrics, RunEnd};
pub use trainer::{load_engine_adapter, CustomReward, RewardRequest, Stage, Trainer};
