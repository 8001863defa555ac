//! bench: group-rollout throughput over a grid of prompt length x generated length x parallel
//! samples, printed like llama.cpp's llama-batched-bench.
//!
//! Each cell evaluates a PP-token prompt once (shared by the B samples), then generates TG
//! tokens per sample with the full sampling chain (temperature 1, top-p 0.9, min-p 0.05) and
//! per-token log-probabilities; end-of-generation tokens are ignored so every sample generates
//! exactly TG tokens.
//!
//! Usage: bench [--model smollm2|PATH] [--threads 2] [--npp 128] [--ntg 128] [--npl 1,8,16]
//!              [--reps 3] [--json FILE]

use fmr::engine::{ContextParams, Model, Token};
use fmr::generate::{Generator, RolloutHooks, RolloutParams};
use std::sync::Arc;

struct Args {
    device: fmr_tools::args::DeviceArgs,
    model: String,
    threads: i32,
    npp: Vec<usize>,
    ntg: Vec<usize>,
    npl: Vec<usize>,
    reps: usize,
    json: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        device: Default::default(),
        model: "smollm2".into(),
        threads: 2,
        npp: vec![128],
        ntg: vec![128],
        npl: vec![1, 8, 16],
        reps: 3,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => a.model = val()?,
            "--threads" => a.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--npp" => a.npp = fmr_tools::args::parse_list(&val()?)?,
            "--ntg" => a.ntg = fmr_tools::args::parse_list(&val()?)?,
            "--npl" => a.npl = fmr_tools::args::parse_list(&val()?)?,
            "--reps" => a.reps = val()?.parse().map_err(|e| format!("--reps: {e}"))?,
            "--json" => a.json = Some(val()?),
            "-h" | "--help" => {
                println!("usage: bench [--model smollm2|PATH] [--threads N] [--npp 128] [--ntg 128] [--npl 1,8,16] [--reps 3] [--json FILE] {}", fmr_tools::args::DeviceArgs::USAGE);
                std::process::exit(0);
            }
            other => {
                if !a.device.take(other, &mut val)? {
                    return Err(format!("unknown argument {other}"));
                }
            }
        }
    }
    if a.reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    Ok(a)
}

/// A prompt of exactly `n` real tokens (a math text repeated and cut).
fn prompt_tokens(model: &Model, n: usize) -> Result<Vec<Token>, String> {
    let text = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May? ";
    let one = model
        .tokenize(text, false, false)
        .map_err(|e| e.to_string())?;
    Ok(one.iter().copied().cycle().take(n).collect())
}

#[derive(serde::Serialize)]
struct Row {
    pp: usize,
    tg: usize,
    b: usize,
    t_pp: f64,
    s_pp: f64,
    t_tg: f64,
    s_tg: f64,
    t: f64,
    s: f64,
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let path = fmr_tools::models::resolve_model(&args.model)?;
    let model = Arc::new(Model::load(&path, &args.device.params).map_err(|e| e.to_string())?);
    println!(
        "model: {} | threads {} | reps {} (best of) | {}",
        model.description(),
        args.threads,
        args.reps,
        fmr::engine::system_info().trim()
    );
    println!("{}", fmr_tools::args::device_line(&model));
    println!();
    println!(
        "|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |"
    );
    println!(
        "|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|"
    );
    let mut rows = Vec::new();
    for &pp in &args.npp {
        for &tg in &args.ntg {
            for &b in &args.npl {
                let cp = ContextParams {
                    n_ctx: (b * (pp + tg + 16)) as u32,
                    n_seq_max: b as u32,
                    n_threads: args.threads,
                    n_batch: 2048,
                    ..Default::default()
                };
                let mut generator =
                    Generator::new(model.clone(), &cp).map_err(|e| e.to_string())?;
                let prompt = prompt_tokens(&model, pp)?;
                let params = RolloutParams {
                    n_samples: b,
                    max_tokens: tg,
                    stop_strings: Vec::new(),
                    ignore_eos: true,
                    ..Default::default()
                };
                // Warm-up (caches, thread pool), like llama-batched-bench.
                let warm = RolloutParams {
                    max_tokens: 4,
                    ..params.clone()
                };
                generator
                    .rollout(&prompt, &warm, RolloutHooks::default())
                    .map_err(|e| e.to_string())?;
                let mut best: Option<Row> = None;
                for _ in 0..args.reps {
                    let r = generator
                        .rollout(&prompt, &params, RolloutHooks::default())
                        .map_err(|e| e.to_string())?;
                    if r.tokens_generated != b * tg {
                        return Err(format!(
                            "generated {} tokens, expected {}",
                            r.tokens_generated,
                            b * tg
                        ));
                    }
                    let t_tg = r.wall_seconds - r.prompt_seconds;
                    let row = Row {
                        pp,
                        tg,
                        b,
                        t_pp: r.prompt_seconds,
                        s_pp: pp as f64 / r.prompt_seconds,
                        t_tg,
                        s_tg: (b * tg) as f64 / t_tg,
                        t: r.wall_seconds,
                        s: (pp + b * tg) as f64 / r.wall_seconds,
                    };
                    if best.as_ref().is_none_or(|x| row.s_tg > x.s_tg) {
                        best = Some(row);
                    }
                }
                let r = best.expect("reps >= 1");
                println!(
                    "| {:>5} | {:>6} | {:>4} | {:>6} | {:>8.3} | {:>8.2} | {:>8.3} | {:>8.2} | {:>8.3} | {:>8.2} |",
                    r.pp, r.tg, r.b, pp + b * tg, r.t_pp, r.s_pp, r.t_tg, r.s_tg, r.t, r.s
                );
                rows.push(r);
            }
        }
    }
    if let Some(p) = args.json {
        std::fs::write(
            &p,
            serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("{p}: {e}"))?;
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}
