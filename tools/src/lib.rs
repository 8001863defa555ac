//! Code shared by fmr's command-line programs (`solve`, `eval`, `bench`, `sft`, `grpo`,
//! `train_bench`, `random_gguf`, `verify_bench`): data sets, the models that set-up fetches,
//! argument helpers, the progress bar, what solve and eval print, and the training command line.
//!
//! The library (`fmr`) knows nothing of these: it takes model paths, not names, and never looks
//! for set-up's model cache.

pub mod args;
pub mod budget_cli;
pub mod chart_font;
pub mod data;
pub mod models;
pub mod progress;
pub mod report;
pub mod train_cli;
