//! budget: the token scheduler — fit a ridge head on logged completion lengths, and measure how
//! well it ranks problems it was not fitted on.
//!
//! Usage:
//!   budget fit --from EVAL_OUT.jsonl [--from ...] --out DIR [--encoder prompt|onnx|JSON]
//!              [--model smollm2|gemma3|PATH] [--params JSON] [--threads N]
//!   budget cv  --from EVAL_OUT.jsonl [--encoder ...] [--model ...] [--params JSON]
//!              [--quantile Q] [--margin M] [--predictions FILE.jsonl]
//!
//! `--from` takes `eval --out` files (each line: the problem text and its samples' token
//! counts). `cv` fits on the even-numbered problems and predicts the odd ones, then the other
//! way round, and reports Spearman's ρ between predicted and observed mean lengths on the
//! held-out problems; `--predictions` writes each problem's held-out prediction and budget.

use fmr::budget::{fold_spearman, spearman, BudgetExample, BudgetModel, Encoder};
use fmr::engine::{Model, ModelParams};
use fmr::generate::RolloutParams;
use fmr_tools::budget_cli::default_encoder;
use serde::Deserialize;
use std::io::Write;
use std::sync::Arc;

#[derive(Deserialize)]
struct Sample {
    tokens: usize,
}

#[derive(Deserialize)]
struct Record {
    index: usize,
    #[serde(default)]
    problem: String,
    samples: Vec<Sample>,
}

struct Args {
    cmd: String,
    from: Vec<String>,
    out: Option<String>,
    encoder: String,
    model: String,
    params: String,
    threads: i32,
    quantile: f64,
    margin: f64,
    predictions: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().ok_or("give a command: fit or cv (--help)")?;
    let mut a = Args {
        cmd,
        from: Vec::new(),
        out: None,
        encoder: "prompt".into(),
        model: "smollm2".into(),
        params: String::new(),
        threads: 2,
        quantile: 0.9,
        margin: 1.2,
        predictions: None,
    };
    if a.cmd == "-h" || a.cmd == "--help" {
        println!("usage: budget fit --from EVAL_OUT.jsonl --out DIR [--encoder prompt|onnx|JSON] [--model NAME|PATH] [--params JSON] [--threads N]\n       budget cv --from EVAL_OUT.jsonl [--encoder ...] [--model ...] [--params JSON] [--quantile Q] [--margin M] [--predictions FILE]");
        std::process::exit(0);
    }
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--from" => a.from.push(val()?),
            "--out" => a.out = Some(val()?),
            "--encoder" => a.encoder = val()?,
            "--model" => a.model = val()?,
            "--params" => a.params = val()?,
            "--threads" => a.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--quantile" => a.quantile = val()?.parse().map_err(|e| format!("--quantile: {e}"))?,
            "--margin" => a.margin = val()?.parse().map_err(|e| format!("--margin: {e}"))?,
            "--predictions" => a.predictions = Some(val()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.from.is_empty() {
        return Err("give --from EVAL_OUT.jsonl".into());
    }
    Ok(a)
}

fn load(paths: &[String]) -> Result<Vec<(usize, BudgetExample)>, String> {
    let mut out = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let r: Record = serde_json::from_str(line).map_err(|e| format!("{p}: {e}"))?;
            let lengths: Vec<usize> = r.samples.iter().map(|s| s.tokens.max(1)).collect();
            if r.problem.is_empty() || lengths.is_empty() {
                return Err(format!(
                    "{p}: record {} lacks the problem text or samples",
                    r.index
                ));
            }
            out.push((
                r.index,
                BudgetExample {
                    problem: r.problem,
                    lengths,
                },
            ));
        }
    }
    Ok(out)
}

fn run() -> Result<(), String> {
    let a = parse_args()?;
    let params = RolloutParams::from_json(&a.params).map_err(|e| e.to_string())?;
    let data = load(&a.from)?;
    let model = if a.encoder == "onnx" {
        None
    } else {
        let path = fmr_tools::models::resolve_model(&a.model)?;
        Some(Arc::new(
            Model::load(&path, &ModelParams::default()).map_err(|e| e.to_string())?,
        ))
    };
    let mut encoder: Box<dyn Encoder> = default_encoder(&a.encoder, &params, a.threads)?
        .build(model)
        .map_err(|e| e.to_string())?;
    let texts: Vec<&str> = data.iter().map(|(_, e)| e.problem.as_str()).collect();
    let t = std::time::Instant::now();
    let features = encoder.embed(&texts).map_err(|e| e.to_string())?;
    println!(
        "encoded {} problems with {:?} (width {}) in {:.1} s",
        texts.len(),
        encoder.spec(),
        encoder.dim(),
        t.elapsed().as_secs_f64()
    );
    let examples: Vec<BudgetExample> = data.iter().map(|(_, e)| e.clone()).collect();
    match a.cmd.as_str() {
        "fit" => {
            let out = a.out.as_deref().ok_or("give --out DIR")?;
            let m = BudgetModel::fit(encoder.spec(), &features, &examples)
                .map_err(|e| e.to_string())?;
            m.save(out.as_ref()).map_err(|e| e.to_string())?;
            println!(
                "fitted on {} problems ({} completions): cross-validated Spearman {:.3}, ridge lambda {}; saved to {out}",
                m.meta().n_problems,
                m.meta().n_lengths,
                m.meta().cv_spearman.unwrap_or(f64::NAN),
                m.meta().lambda
            );
        }
        "cv" => {
            let n = examples.len();
            let mut pred = vec![0.0; n];
            let mut budget = vec![0usize; n];
            for part in 0..2 {
                let train: Vec<usize> = (0..n).filter(|i| i % 2 != part).collect();
                let f: Vec<Vec<f32>> = train.iter().map(|&i| features[i].clone()).collect();
                let e: Vec<BudgetExample> = train.iter().map(|&i| examples[i].clone()).collect();
                let m = BudgetModel::fit(encoder.spec(), &f, &e).map_err(|e| e.to_string())?;
                for i in (0..n).filter(|i| i % 2 == part) {
                    pred[i] = m.predict_mean(&features[i]).map_err(|e| e.to_string())?;
                    budget[i] = m
                        .predict_budget(&features[i], a.quantile, a.margin)
                        .map_err(|e| e.to_string())?;
                }
            }
            let observed: Vec<f64> = examples
                .iter()
                .map(|e| e.lengths.iter().sum::<usize>() as f64 / e.lengths.len() as f64)
                .collect();
            // Within each held-out half (the pooled rho is biased by the halves' offsets).
            let rho = fold_spearman(&pred, &observed, 2).unwrap_or(f64::NAN);
            let pooled = spearman(&pred, &observed).unwrap_or(f64::NAN);
            let within = examples
                .iter()
                .zip(&budget)
                .map(|(e, &b)| e.lengths.iter().filter(|&&l| l <= b).count())
                .sum::<usize>() as f64
                / examples.iter().map(|e| e.lengths.len()).sum::<usize>() as f64;
            println!(
                "held-out (2-fold by problem): Spearman rho {rho:.3} (mean of the two held-out halves; pooled {pooled:.3}) over {n} problems; budgets (q {}, margin {}) mean {:.0} tokens, {:.1}% of completions fit",
                a.quantile,
                a.margin,
                budget.iter().sum::<usize>() as f64 / n.max(1) as f64,
                100.0 * within
            );
            if let Some(p) = &a.predictions {
                let mut f = std::fs::File::create(p).map_err(|e| format!("{p}: {e}"))?;
                for (k, (i, _)) in data.iter().enumerate() {
                    let line = serde_json::json!({"index": i, "predicted_mean": pred[k], "observed_mean": observed[k], "budget": budget[k]});
                    writeln!(f, "{line}").map_err(|e| e.to_string())?;
                }
            }
        }
        other => return Err(format!("unknown command {other} (fit or cv)")),
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("budget: {e}");
        std::process::exit(1);
    }
}
