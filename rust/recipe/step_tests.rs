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

/// A reward that differs between completions (the character count of the text), so every
/// group has advantages to learn from.
fn text_length_reward() -> super::trainer::CustomReward {
    Box::new(|r| Ok(r.completion.chars().count() as f64 / 10.0))
}

/// `num_iterations` μ = 2: one GRPO step makes two optimizer updates on the same rollouts, the
/// second with importance ratios against the trainer's own log-probs from before the first
/// update. Replayed by hand from a μ = 1 run with the same seed (same rollouts, same first
/// update): the second update with those old log-probs gives the μ = 2 adapter; with ρ = 1
/// (no old log-probs) it does not.
#[test]
fn grpo_num_iterations_reuses_rollouts_with_the_trainers_old_logprobs() {
    use crate::train::loss::{Advantages, GrpoBatch, GrpoSequence};
    use crate::train::model::JoinedSeqs;

    let with_mu = |mu: usize, tag: &str| {
        let dir = out_dir(tag);
        let mut c = config(Stage::Grpo, &dir);
        c.grpo.num_iterations = mu;
        c.grpo.prompts_per_step = 2;
        c.grpo.generations = 3;
        c.checkpoint_every = 2;
        c.optimizer.lr = 2e-2;
        c.validate().unwrap();
        let mut t = Trainer::new(c, Stage::Grpo).unwrap();
        t.set_custom_reward(Some(text_length_reward()), Some(1.0));
        t
    };
    let mut a = with_mu(2, "mu2");
    let lora0 = a.lora.clone();
    let out_a = a.grpo_step(None, None).unwrap();
    assert_eq!(a.opt.step, 2, "two optimizer updates");
    assert_eq!(out_a.metrics.step, 2);
    assert!(out_a.rollouts.iter().any(|r| r.advantage != 0.0));
    // The second update's ratios moved away from 1.
    assert!(out_a.metrics.clip_ratio_region >= 0.0 && out_a.metrics.loss.is_finite());

    let mut b = with_mu(1, "mu1");
    let out_b = b.grpo_step(None, None).unwrap();
    assert_eq!(b.opt.step, 1);
    let toks = |o: &super::grpo::GrpoStepOutput| -> Vec<Vec<u32>> {
        o.rollouts
            .iter()
            .map(|r| r.completion_tokens.clone())
            .collect()
    };
    assert_eq!(toks(&out_a), toks(&out_b), "same seed, same rollouts");
    assert!(b.lora != a.lora, "the second update changed the adapter");

    // Replay the second update on b.
    let joined = JoinedSeqs::completions(
        out_b
            .rollouts
            .iter()
            .map(|r| (r.prompt_tokens.as_slice(), r.completion_tokens.as_slice())),
    );
    let old = b.tf.logprobs(Some(&lora0), &joined.refs()).unwrap();
    let mut loss_cfg = b.cfg.grpo.loss.clone();
    loss_cfg.eos_token_id = b.engine_model.eos().map(|t| t as u32);
    let (lora1, opt1) = (b.lora.clone(), b.opt.clone());
    let replay = |b: &mut Trainer, old: Option<&Vec<Vec<f32>>>| {
        b.lora = lora1.clone();
        b.opt = opt1.clone();
        b.device_state_stale();
        let seqs: Vec<GrpoSequence> = out_b
            .rollouts
            .iter()
            .enumerate()
            .map(|(i, r)| GrpoSequence {
                prompt: r.prompt_tokens.clone(),
                completion: r.completion_tokens.clone(),
                old_logprobs: old.map(|o| o[i].clone()),
                truncated: r.finish_reason == "length",
                ..Default::default()
            })
            .collect();
        let batch = GrpoBatch {
            seqs,
            advantages: Advantages::Given(out_b.rollouts.iter().map(|r| r.advantage).collect()),
        };
        b.zero_grads().unwrap();
        b.grpo_micro_batch(&batch, &loss_cfg).unwrap();
        b.optimizer_step(1.0).unwrap();
        b.lora.clone()
    };
    let max_diff = |x: &crate::train::lora::LoraWeights| -> f64 {
        x.params()
            .iter()
            .flatten()
            .zip(a.lora.params().iter().flatten())
            .map(|(&p, &q)| (p as f64 - q as f64).abs())
            .fold(0.0, f64::max)
    };
    let with_old = max_diff(&replay(&mut b, Some(&old)));
    let on_policy = max_diff(&replay(&mut b, None));
    eprintln!("μ = 2 vs replay: with the trainer's old log-probs {with_old:.3e}, with ρ = 1 {on_policy:.3e}");
    assert!(
        with_old < 1e-6 && on_policy > 10.0 * with_old.max(1e-9),
        "with old log-probs {with_old:e}, on-policy {on_policy:e}"
    );
    // max_steps and checkpoint_every count optimizer steps: multiples of μ.
    let mut bad = config(Stage::Grpo, &out_dir("mu-bad"));
    bad.grpo.num_iterations = 3;
    assert!(bad.validate().is_err());
    bad.grpo.num_iterations = 0;
    assert!(bad.validate().is_err());
}
