//! A step that fails at any stage changes nothing: each stage of a GRPO and an SFT step is made
//! to fail in turn (the `fault` hook), and the weights, optimizer state, RNG, data order and
//! the run's files must be exactly as before; the next step then matches an uninterrupted run.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::config::RunConfig;
use super::trainer::{Stage, StepStage, Trainer};
use crate::train::tests::support::{scratch_dir, smollm2_q41};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn out_dir(tag: &str) -> PathBuf {
    let d = scratch_dir().join(format!("atomic-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config(stage: Stage, out: &Path) -> RunConfig {
    let common = json!({
        "preset": "small",
        "model": smollm2_q41(),
        "out_dir": out,
        "threads": 1,
        "seed": 3,
        "max_steps": 4,
        "lora": {"rank": 2, "alpha": 4, "targets": ["q", "v"]},
        "optimizer": {"lr": 1e-3, "schedule": {"kind": "constant", "warmup": 0}},
    });
    let mut v = common.as_object().cloned().unwrap_or_default();
    let extra = match stage {
        Stage::Grpo => json!({
            "data": {"train": fixture("recipe_grpo.jsonl")},
            "grpo": {"prompts_per_step": 1, "generations": 2, "max_completion_tokens": 8,
                     "loss": {"beta": 0.04}}
        }),
        Stage::Sft => json!({
            "data": {"train": fixture("recipe_sft.jsonl"),
                     "validation": fixture("recipe_sft_val.jsonl")},
            "sft": {"batch_size": 2, "micro_batch": 1, "max_seq_len": 160, "eval_every": 1,
                    "max_validation_rows": 1}
        }),
    };
    v.extend(extra.as_object().cloned().unwrap_or_default());
    RunConfig::from_json(&serde_json::Value::Object(v).to_string()).unwrap()
}

fn step(t: &mut Trainer) -> crate::error::Result<()> {
    match t.stage() {
        Stage::Sft => t.sft_step(None).map(|_| ()),
        Stage::Grpo => t.grpo_step(None, None).map(|_| ()),
    }
}

/// What a step may change, for comparison.
#[derive(Debug, PartialEq)]
struct Observed {
    lora: crate::train::lora::LoraWeights,
    opt: crate::train::optim::AdamW,
    rng: crate::train::rng::Rng,
    cursor: super::data::DataCursor,
    metrics_rows: usize,
    files: Vec<(String, Option<Vec<u8>>)>,
}

fn observe(t: &Trainer) -> Observed {
    let dir = &t.config().out_dir;
    Observed {
        lora: t.lora.clone(),
        opt: t.opt.clone(),
        rng: t.rng.clone(),
        cursor: t.data_cursor(),
        metrics_rows: t.metrics().rows().len(),
        files: ["metrics.jsonl", "metrics.csv", "rollouts.jsonl"]
            .iter()
            .map(|f| (f.to_string(), std::fs::read(dir.join(f)).ok()))
            .collect(),
    }
}

fn every_failing_stage_changes_nothing(stage: Stage, stages: &[StepStage]) {
    let dir = out_dir(stage.as_str());
    let mut t = Trainer::new(config(stage, &dir), stage).unwrap();
    // One finished step first: optimizer moments, metrics and rollouts are then non-trivial.
    step(&mut t).unwrap();
    let before = observe(&t);
    for &s in stages {
        t.fail_at = Some(s);
        let e = step(&mut t).expect_err("the injected failure must fail the step");
        assert!(e.message().contains(&format!("{s:?}")), "{s:?}: {e}");
        assert!(
            observe(&t) == before,
            "{stage:?} step failing at {s:?} changed state"
        );
    }
    t.fail_at = None;
    step(&mut t).unwrap();

    // The same two steps without failures give the same adapter, optimizer and files.
    let dir2 = out_dir(&format!("{}-clean", stage.as_str()));
    let mut clean = Trainer::new(config(stage, &dir2), stage).unwrap();
    step(&mut clean).unwrap();
    step(&mut clean).unwrap();
    assert!(
        t.lora == clean.lora,
        "{stage:?}: adapter differs from an uninterrupted run"
    );
    assert!(
        t.opt == clean.opt,
        "{stage:?}: optimizer differs from an uninterrupted run"
    );
    assert_eq!(t.data_cursor(), clean.data_cursor());
    assert_eq!(t.metrics().rows().len(), clean.metrics().rows().len());

    // The chart is drawn only when the configuration asks for it.
    t.save_outputs().unwrap();
    assert!(dir.join("adapter.gguf").is_file());
    assert!(!dir.join("chart.png").exists(), "no chart was asked for");
    t.cfg.chart = Some(super::config::ChartOptions::default());
    t.save_outputs().unwrap();
    assert!(dir.join("chart.png").is_file());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

#[test]
fn grpo_step_failing_at_any_stage_changes_nothing() {
    every_failing_stage_changes_nothing(
        Stage::Grpo,
        &[
            StepStage::Inputs,
            StepStage::Scoring,
            StepStage::Loss,
            StepStage::Update,
            StepStage::Metrics,
            StepStage::Rollouts,
        ],
    );
}

#[test]
fn sft_step_failing_at_any_stage_changes_nothing() {
    every_failing_stage_changes_nothing(
        Stage::Sft,
        &[
            StepStage::Inputs,
            StepStage::Loss,
            StepStage::Update,
            StepStage::Validation,
            StepStage::Metrics,
        ],
    );
}
