//! The recipe loops on the real default model: SIGKILL + resume, GRPO logs checked against an
//! independent computation, adapter hot-swap memory, cancellation and bad configurations.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fmr::recipe::{RolloutRecord, RunConfig, Stage, StepMetrics, Trainer};
use fmr::train::lora::{LoraConfig, LoraTarget, LoraWeights};
use fmr::train::model::SeqRef;
use fmr::ErrorCode;
use serde_json::{json, Value};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A small SFT run: 2 rows per step, LoRA rank 2 on q and v, checkpoint every 2 steps.
fn sft_config(out_dir: &Path, max_steps: u64) -> Value {
    json!({
        "preset": "small",
        "model": common::smollm2_path(),
        "out_dir": out_dir,
        "threads": 1,
        "seed": 11,
        "max_steps": max_steps,
        "checkpoint_every": 2,
        "chart": {},
        "lora": {"rank": 2, "alpha": 4, "targets": ["q", "v"]},
        "optimizer": {"lr": 1e-3, "schedule": {"kind": "constant", "warmup": 0}},
        "data": {"train": fixture("recipe_sft.jsonl"), "validation": fixture("recipe_sft_val.jsonl")},
        "sft": {"batch_size": 2, "micro_batch": 2, "max_seq_len": 160, "eval_every": 3,
                "max_validation_rows": 2}
    })
}

fn grpo_config(out_dir: &Path, max_steps: u64) -> Value {
    json!({
        "preset": "small",
        "model": common::smollm2_path(),
        "out_dir": out_dir,
        "threads": 1,
        "seed": 5,
        "max_steps": max_steps,
        "checkpoint_every": 1,
        "lora": {"rank": 4, "alpha": 8, "targets": ["q", "v"]},
        "optimizer": {"lr": 2e-3, "schedule": {"kind": "constant", "warmup": 0}},
        "data": {"train": fixture("recipe_grpo.jsonl")},
        "grpo": {"prompts_per_step": 2, "generations": 4, "max_completion_tokens": 24,
                 "loss": {"beta": 0.04}}
    })
}

fn trainer(cfg: &Value, stage: Stage) -> Trainer {
    Trainer::new(RunConfig::from_json(&cfg.to_string()).unwrap(), stage).unwrap()
}

/// Metrics rows of optimizer steps (the SFT step-0 validation row left out).
fn read_metrics(dir: &Path) -> Vec<StepMetrics> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<StepMetrics>(l).ok())
        .filter(|m| m.step > 0)
        .collect()
}

/// Child half of the kill test: runs the SFT loop named by FMR_RECIPE_CHILD_CONFIG (no-op when
/// the variable is unset, i.e. in a normal test run).
#[test]
fn child_sft_run() {
    let Ok(cfg) = std::env::var("FMR_RECIPE_CHILD_CONFIG") else {
        return;
    };
    let cfg: Value = serde_json::from_str(&cfg).unwrap();
    let mut t = trainer(&cfg, Stage::Sft);
    t.run(&mut |_| true, None).unwrap();
}

#[test]
fn sft_run_killed_with_sigkill_resumes_with_the_same_data_order_and_metrics() {
    let dir = common::TempDir::new("recipe-kill");
    let (killed, reference) = (dir.0.join("killed"), dir.0.join("reference"));
    let steps = 6;

    // The uninterrupted reference run, keeping every periodic checkpoint.
    let mut ref_cfg = sft_config(&reference, steps);
    ref_cfg["keep_checkpoints"] = json!(true);
    let mut r = trainer(&ref_cfg, Stage::Sft);
    r.run(&mut |_| true, None).unwrap();
    let ref_rows = read_metrics(&reference);
    assert_eq!(ref_rows.len(), steps as usize);
    let mut kept: Vec<String> = std::fs::read_dir(reference.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            "step-2.safetensors",
            "step-4.safetensors",
            "step-6.safetensors"
        ]
    );

    // A real process, killed with SIGKILL once it has finished step 3 (checkpoint at step 2).
    let cfg = sft_config(&killed, steps);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_sft_run",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FMR_RECIPE_CHILD_CONFIG", cfg.to_string())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while read_metrics(&killed).len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "child made no progress"
        );
        assert!(child.try_wait().unwrap().is_none(), "child ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        read_metrics(&killed).len() < steps as usize,
        "killed too late"
    );

    let mut t = trainer(&cfg, Stage::Sft);
    let resumed_at = t.step_count();
    assert!(
        resumed_at >= 2 && resumed_at % 2 == 0,
        "resumed at {resumed_at}"
    );
    assert_eq!(
        t.metrics().rows().len() as u64,
        resumed_at + 1,
        "step 0 + steps"
    );
    let start = &t.metrics().rows()[0];
    assert_eq!(start.step, 0);
    assert!(start.val_loss.is_some_and(|v| v > 0.0));
    t.run(&mut |_| true, None).unwrap();
    assert_eq!(t.step_count(), steps);
    assert_eq!(t.data_cursor(), r.data_cursor());

    let rows = read_metrics(&killed);
    assert_eq!(
        rows.len(),
        steps as usize,
        "metrics continue without gaps or repeats"
    );
    for (a, b) in rows.iter().zip(&ref_rows) {
        assert_eq!(a.step, b.step);
        assert!(
            (a.loss - b.loss).abs() <= 1e-4 * b.loss.abs().max(1.0),
            "step {}: loss {} vs reference {}",
            a.step,
            a.loss,
            b.loss
        );
        assert_eq!(a.val_loss.is_some(), b.val_loss.is_some());
        assert_eq!(
            a.completion_tokens_max, b.completion_tokens_max,
            "same rows"
        );
    }
    let csv = std::fs::read_to_string(killed.join("metrics.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        steps as usize + 2,
        "header, step 0, steps"
    );
    for f in [
        "adapter/adapter_model.safetensors",
        "adapter.gguf",
        "chart.png",
    ] {
        assert!(killed.join(f).is_file(), "{f} missing");
    }
    // Same configuration required: a changed one is refused with a clear error.
    let mut other = cfg.clone();
    other["optimizer"]["lr"] = json!(5e-4);
    let e = Trainer::new(
        RunConfig::from_json(&other.to_string()).unwrap(),
        Stage::Sft,
    )
    .err()
    .unwrap();
    assert_eq!(e.code(), ErrorCode::InvalidConfig);
    assert!(e.message().contains("different configuration"), "{e}");
}

/// k3 KL and the GRPO loss for μ = 1 (ρ = 1), computed here from the logged rollouts.
fn independent_loss(
    t: &Trainer,
    lora_before: &LoraWeights,
    rows: &[RolloutRecord],
    beta: f64,
    eos: u32,
) -> (f64, f64) {
    let toks: Vec<Vec<u32>> = rows
        .iter()
        .map(|r| [r.prompt_tokens.as_slice(), &r.completion_tokens].concat())
        .collect();
    let seqs: Vec<SeqRef<'_>> = toks
        .iter()
        .zip(rows)
        .map(|(t, r)| SeqRef {
            tokens: t,
            score_from: r.prompt_tokens.len(),
        })
        .collect();
    let policy = t.transformer().logprobs(Some(lora_before), &seqs).unwrap();
    let reference = t.transformer().logprobs(None, &seqs).unwrap();
    let (mut loss, mut kl_sum, mut n_tok) = (0.0f64, 0.0f64, 0usize);
    for (i, r) in rows.iter().enumerate() {
        let mask = r
            .completion_tokens
            .iter()
            .position(|&x| x == eos)
            .map_or(r.completion_tokens.len(), |p| p + 1);
        let mut seq = 0.0;
        for j in 0..mask {
            let d = reference[i][j] as f64 - policy[i][j] as f64;
            let kl = d.exp() - d - 1.0;
            seq += -(r.advantage as f64 - beta * kl);
            kl_sum += kl;
        }
        n_tok += mask;
        loss += seq / mask as f64;
    }
    (loss / rows.len() as f64, kl_sum / n_tok as f64)
}

#[test]
fn grpo_logs_loss_advantages_and_kl_matching_an_independent_computation() {
    let dir = common::TempDir::new("recipe-grpo-check");
    let cfg = grpo_config(&dir.0, 3);
    let mut t = trainer(&cfg, Stage::Grpo);
    // A host reward that varies between completions, so advantages are not all zero.
    t.set_custom_reward(
        Some(Box::new(|r: &fmr::recipe::RewardRequest<'_>| {
            Ok(r.completion.bytes().filter(u8::is_ascii_digit).count() as f64 / 10.0)
        })),
        Some(0.5),
    );
    let eos = t.engine_model().eos().unwrap() as u32;
    let mut kls = Vec::new();
    for _ in 0..3 {
        let before = t.lora().clone();
        let out = t.grpo_step(None, None).unwrap();
        let step = out.metrics.step;
        // The rollouts as logged on disk for this step.
        let logged: Vec<RolloutRecord> = std::fs::read_to_string(dir.0.join("rollouts.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<RolloutRecord>(l).unwrap())
            .filter(|r| r.step == step)
            .collect();
        assert_eq!(logged, out.rollouts);
        assert_eq!(logged.len(), 8);

        // Advantages: (R - mean_g) / (unbiased std_g + 1e-4).
        for g in 0..2 {
            let rs: Vec<f64> = logged
                .iter()
                .filter(|r| r.group == g)
                .map(|r| r.reward)
                .collect();
            let m = rs.iter().sum::<f64>() / rs.len() as f64;
            let sd =
                (rs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (rs.len() - 1) as f64).sqrt();
            for r in logged.iter().filter(|r| r.group == g) {
                let want = (r.reward - m) / (sd + 1e-4);
                assert!(
                    (r.advantage as f64 - want).abs() < 1e-4,
                    "step {step}: advantage {} vs {want}",
                    r.advantage
                );
                let parts =
                    r.reward_format + r.reward_cosine + r.reward_length + 0.5 * r.reward_custom;
                assert!(
                    (r.reward - parts).abs() < 1e-9,
                    "reward = weighted sum of parts"
                );
            }
        }
        let (loss, kl) = independent_loss(&t, &before, &logged, 0.04, eos);
        let m = &out.metrics;
        assert!(
            (m.loss - loss).abs() < 1e-4,
            "step {step}: logged loss {} vs independent {loss}",
            m.loss
        );
        assert!(
            (m.kl - kl).abs() <= 1e-4 * kl.abs().max(1e-3),
            "step {step}: logged KL {} vs independent {kl}",
            m.kl
        );
        kls.push(m.kl);
    }
    assert_eq!(kls[0], 0.0, "the first step's policy is the reference");
    let advs = std::fs::read_to_string(dir.0.join("rollouts.jsonl")).unwrap();
    assert!(advs.contains("\"reward_custom\":0.") || advs.contains("\"reward_custom\":1"));
    assert!(
        kls[2] > 0.0,
        "the adapter moved away from the reference: {kls:?}"
    );
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap()
}

/// RSS is per process, so the swap test runs alone in a child process (other tests of this
/// binary may run beside it and allocate).
#[test]
fn adapter_hot_swap_keeps_memory_flat_over_1000_swaps() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_hot_swap",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FMR_RECIPE_SWAP_CHILD", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "swap child failed:\n{text}");
    assert!(text.contains("growth over the next 900"), "{text}");
}

/// Child half of the swap test (no-op unless FMR_RECIPE_SWAP_CHILD is set).
#[test]
fn child_hot_swap() {
    if std::env::var_os("FMR_RECIPE_SWAP_CHILD").is_none() {
        return;
    }
    let dir = common::TempDir::new("recipe-swap");
    let mut t = trainer(&grpo_config(&dir.0.join("run"), 1), Stage::Grpo);
    // Two adapters of the run's shape: a strong random one and the zero one.
    let hp = t.transformer().model().hp().clone();
    let lc = LoraConfig {
        rank: 4,
        alpha: 8.0,
        targets: vec![LoraTarget::Q, LoraTarget::V],
        seed: 3,
    };
    let mut strong = LoraWeights::new(&lc, t.transformer().model()).unwrap();
    for (l, tg) in strong.entries() {
        let (_, b) = strong.pair_mut(l, tg).unwrap();
        for (i, v) in b.iter_mut().enumerate() {
            *v = ((i * 7919 % 13) as f32 - 6.0) * 0.05;
        }
    }
    let zero = LoraWeights::zeros(&lc, &hp).unwrap();
    let arch = t.transformer().model().arch();
    let (a_dir, z_dir) = (dir.0.join("strong"), dir.0.join("zero"));
    fmr::adapter::save_peft(&strong, arch, &hp, &a_dir, "smollm2").unwrap();
    fmr::adapter::save_peft(&zero, arch, &hp, &z_dir, "smollm2").unwrap();

    let dirs: [PathBuf; 2] = [a_dir, z_dir];
    let mut rss_after_warmup = 0;
    let mut previous = None;
    for i in 0..1000 {
        t.load_adapter(&dirs[i % 2]).unwrap();
        t.sync_engine_adapter().unwrap();
        let live = t.live_adapter().unwrap().clone();
        if let Some(prev) = previous.replace(live) {
            // Only this test holds the previous adapter now: the engine let go of it.
            assert_eq!(std::sync::Arc::strong_count(&prev), 1, "swap {i}");
        }
        if i == 99 {
            rss_after_warmup = vm_rss_kib();
        }
    }
    drop(previous);
    let grown = vm_rss_kib() as i64 - rss_after_warmup as i64;
    println!("RSS after 100 swaps {rss_after_warmup} KiB, growth over the next 900: {grown} KiB");
    assert!(
        grown < 8 * 1024,
        "memory grew by {grown} KiB over 900 swaps"
    );

    // The swapped-in adapter is really applied: greedy output differs between the two.
    let greedy = |t: &mut Trainer| -> Vec<i32> {
        let params = fmr::generate::RolloutParams::from_json(
            r#"{"n_samples": 1, "max_tokens": 8, "sampling": {"temperature": 0}}"#,
        )
        .unwrap();
        let g = t.engine().unwrap();
        let r = g
            .solve("What is 2 + 3?", &params, Default::default())
            .unwrap();
        r.samples[0].tokens.clone()
    };
    t.load_adapter(&dirs[1]).unwrap();
    let with_zero = greedy(&mut t);
    t.load_adapter(&dirs[0]).unwrap();
    let with_strong = greedy(&mut t);
    assert_ne!(with_zero, with_strong);
}

#[test]
fn cancel_flag_stops_a_run_and_keeps_a_checkpoint() {
    let dir = common::TempDir::new("recipe-cancel");
    let mut t = trainer(&sft_config(&dir.0, 6), Stage::Sft);
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f2 = flag.clone();
    let e = t
        .run(
            &mut |m| {
                if m.step == 1 {
                    f2.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                true
            },
            Some(flag),
        )
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Cancelled);
    assert_eq!(t.step_count(), 1);
    let resumed = trainer(&sft_config(&dir.0, 6), Stage::Sft);
    assert_eq!(
        resumed.step_count(),
        1,
        "the finished step was checkpointed"
    );
}

#[test]
fn bad_configurations_and_data_give_clear_errors() {
    let dir = common::TempDir::new("recipe-bad");
    let mut cfg = sft_config(&dir.0, 1);
    cfg["data"]["train"] = json!(dir.0.join("missing.jsonl"));
    let e = Trainer::new(RunConfig::from_json(&cfg.to_string()).unwrap(), Stage::Sft)
        .err()
        .unwrap();
    assert_eq!(e.code(), ErrorCode::Io);
    assert!(e.message().contains("missing.jsonl"), "{e}");

    let bad_rows = dir.0.join("bad.jsonl");
    std::fs::write(&bad_rows, "{\"problem\": \"ok\"}\nnot json\n").unwrap();
    cfg["data"]["train"] = json!(bad_rows);
    let e = Trainer::new(RunConfig::from_json(&cfg.to_string()).unwrap(), Stage::Sft)
        .err()
        .unwrap();
    assert!(e.message().contains("bad.jsonl:2"), "{e}");

    let mut cfg = sft_config(&dir.0, 1);
    cfg["init_adapter"] = json!(dir.0.join("no-adapter"));
    let e = Trainer::new(RunConfig::from_json(&cfg.to_string()).unwrap(), Stage::Sft)
        .err()
        .unwrap();
    assert_eq!(e.code(), ErrorCode::AdapterLoad);

    // A corrupt checkpoint is reported, not silently replaced.
    let cfg = sft_config(&dir.0, 1);
    std::fs::write(dir.0.join("checkpoint.safetensors"), b"garbage").unwrap();
    let e = Trainer::new(RunConfig::from_json(&cfg.to_string()).unwrap(), Stage::Sft)
        .err()
        .unwrap();
    assert!(e.message().contains("checkpoint.safetensors"), "{e}");

    // GRPO needs a bound on its length.
    let gdir = dir.0.join("g");
    let mut g = grpo_config(&gdir, 0);
    g["max_steps"] = json!(0);
    let mut t = trainer(&g, Stage::Grpo);
    let e = t.run(&mut |_| true, None).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidConfig);
}
