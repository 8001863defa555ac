//! Tests of the trainer core on real and random-weight models: kernels and losses (`units`),
//! the GRPO options and diagnostics (`grpo_options`),
//! gradient checks (`gradcheck`), file formats (`formats`), forward parity with llama.cpp
//! (`parity`, through its eval callback in `trace`).
#![allow(dead_code)]

mod formats;
mod gradcheck;
mod grpo_options;
mod parity;
pub(crate) mod support;
mod trace;
mod units;
