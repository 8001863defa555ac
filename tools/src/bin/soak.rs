//! soak: many solves on one generator, then many GRPO-style adapter swaps on one trainer, with
//! the process's resident memory (RSS) reported along the way. Not part of the test suite.
//!
//! Usage: soak [--model smollm2|PATH] [--solves 10000] [--swaps 1000] [--threads 2] [--every N]
//!
//! Solves: short arithmetic problems, 2 samples of at most 8 tokens, random cancels (every 7th
//! solve is cancelled from another thread mid-way) and deadlines (every 5th has 20 ms). Swaps:
//! a GRPO trainer on the same model alternates two LoRA adapters (a random one and the zero
//! one), exporting each to the engine as a GRPO step does, and generates one short group with
//! the adapter after every swap. Prints RSS (MiB) every `--every` iterations and the growth.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fmr::engine::{ContextParams, Model, ModelParams};
use fmr::generate::{Generator, RolloutHooks, RolloutParams};
use fmr::recipe::{RunConfig, Stage, Trainer};
use fmr::train::lora::{LoraConfig, LoraTarget, LoraWeights};

struct Args {
    model: String,
    solves: usize,
    swaps: usize,
    threads: i32,
    every: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        model: "smollm2".into(),
        solves: 10_000,
        swaps: 1_000,
        threads: 2,
        every: 1_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |s: String| s.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--model" => a.model = val()?,
            "--solves" => a.solves = num(val()?)?,
            "--swaps" => a.swaps = num(val()?)?,
            "--threads" => a.threads = num(val()?)? as i32,
            "--every" => a.every = num(val()?)?.max(1),
            "-h" | "--help" => {
                println!("usage: soak [--model smollm2|PATH] [--solves N] [--swaps N] [--threads N] [--every N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// Resident set size of this process in MiB (Linux).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let path = fmr_tools::models::resolve_model(&args.model)?;
    let model = Arc::new(Model::load(&path, &ModelParams::default()).map_err(|e| e.to_string())?);
    let cp = ContextParams {
        n_ctx: 1024,
        n_seq_max: 2,
        n_threads: args.threads,
        ..Default::default()
    };
    let mut g = Generator::new(model.clone(), &cp).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut base = None;
    let (mut cancelled, mut deadline_cut) = (0usize, 0usize);
    for i in 0..args.solves {
        let mut p = RolloutParams {
            n_samples: 2,
            max_tokens: 8,
            ..Default::default()
        };
        p.sampling.seed = i as u32;
        if i % 5 == 0 {
            p.deadline_ms = Some(20);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let canceller = (i % 7 == 0).then(|| {
            let c = cancel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                c.store(true, Ordering::Relaxed);
            })
        });
        let problem = format!("What is {} + {}?", i % 97, (i * 31) % 89);
        let r = g
            .solve(
                &problem,
                &p,
                RolloutHooks {
                    on_token: None,
                    cancel: Some(cancel),
                },
            )
            .map_err(|e| format!("solve {i}: {e}"))?;
        if let Some(h) = canceller {
            let _ = h.join();
        }
        cancelled += r.cancelled as usize;
        deadline_cut += r
            .samples
            .iter()
            .any(|s| s.finish_reason == fmr::generate::FinishReason::Deadline)
            as usize;
        if (i + 1) % args.every == 0 {
            let rss = rss_mib();
            let b = *base.get_or_insert(rss);
            println!(
                "solves {:>6}: RSS {rss:7.1} MiB (growth since the first report {:+.1} MiB), {cancelled} cancelled, {deadline_cut} cut by the deadline, {:.0} s",
                i + 1,
                rss - b,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    drop(g);
    if args.swaps == 0 {
        return Ok(());
    }
    swaps(&args, &path)
}

fn swaps(args: &Args, path: &std::path::Path) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("fmr-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let data = dir.join("train.jsonl");
    std::fs::write(
        &data,
        "{\"problem\": \"What is 2 + 3?\", \"answer\": \"5\"}\n",
    )
    .map_err(|e| e.to_string())?;
    let cfg = serde_json::json!({
        "preset": "small", "model": path, "out_dir": dir.join("run"), "threads": args.threads,
        "max_steps": 1, "lora": {"rank": 4, "alpha": 8, "targets": ["q", "v"]},
        "data": {"train": data},
        "grpo": {"prompts_per_step": 1, "generations": 2, "max_completion_tokens": 8}
    });
    let cfg = RunConfig::from_json(&cfg.to_string()).map_err(|e| e.to_string())?;
    let mut t = Trainer::new(cfg, Stage::Grpo).map_err(|e| e.to_string())?;
    let lc = LoraConfig {
        rank: 4,
        alpha: 8.0,
        targets: vec![LoraTarget::Q, LoraTarget::V],
        seed: 9,
    };
    let model = t.transformer().model();
    let (hp, arch) = (model.hp().clone(), model.arch());
    // A LoRA starts with B = 0; give B values so that the two adapters differ.
    let mut random = LoraWeights::new(&lc, model).map_err(|e| e.to_string())?;
    for (l, tg) in random.entries() {
        if let Some((_, b)) = random.pair_mut(l, tg) {
            for (i, v) in b.iter_mut().enumerate() {
                *v = ((i * 7919 % 13) as f32 - 6.0) * 0.05;
            }
        }
    }
    let zero = LoraWeights::zeros(&lc, &hp).map_err(|e| e.to_string())?;
    let dirs = [dir.join("random"), dir.join("zero")];
    fmr::adapter::save_peft(&random, arch, &hp, &dirs[0], "soak").map_err(|e| e.to_string())?;
    fmr::adapter::save_peft(&zero, arch, &hp, &dirs[1], "soak").map_err(|e| e.to_string())?;
    let p = RolloutParams {
        n_samples: 2,
        max_tokens: 4,
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut base = None;
    for i in 0..args.swaps {
        t.load_adapter(&dirs[i % 2]).map_err(|e| e.to_string())?;
        let g = t.engine().map_err(|e| format!("swap {i}: {e}"))?;
        g.solve("What is 2 + 3?", &p, RolloutHooks::default())
            .map_err(|e| format!("swap {i}: {e}"))?;
        if (i + 1) % (args.every / 10).max(1) == 0 {
            let rss = rss_mib();
            let b = *base.get_or_insert(rss);
            println!(
                "swaps  {:>6}: RSS {rss:7.1} MiB (growth since the first report {:+.1} MiB), {:.0} s",
                i + 1,
                rss - b,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
