//! `eval --config RUN.json --file HELDOUT.jsonl [--adapter A]`: one completion per problem with
//! the run's model, prompt and completion limit; prints accuracy and format rate with 95%
//! Wilson intervals and mean / p90 completion tokens, and a JSON summary line.

use std::io::Write;
use std::sync::Arc;

use super::Args;
use fmr::answer::{extract_answer, ExtractOptions};
use fmr::engine::{ContextParams, Model};
use fmr::generate::{Generator, RolloutParams};
use fmr::recipe::evaluate;
use fmr::recipe::{load_problems, RunConfig};
use fmr_tools::progress::Progress;
use fmr_tools::report;

pub fn run(args: &Args) -> Result<(), String> {
    let cfg_path = args.config.as_deref().ok_or("--config missing")?;
    let mut cfg = RunConfig::from_file(cfg_path.as_ref()).map_err(|e| e.to_string())?;
    cfg.model = fmr_tools::models::resolve_model_path(&cfg.model)?;
    let file = args.file.as_deref().ok_or("give --file HELDOUT.jsonl")?;
    let mut problems = load_problems(file.as_ref(), &cfg.data).map_err(|e| e.to_string())?;
    if let Some(l) = args.limit {
        problems.truncate(l);
    }
    fmr::engine::init_backend();
    let path = cfg.model.clone();
    let model = Arc::new(Model::load(&path, &args.device.params).map_err(|e| e.to_string())?);
    let g = &cfg.grpo;
    // One completion per problem, `--in-flight` problems decoding together.
    let in_flight = args.in_flight.max(1);
    let cp = ContextParams {
        n_ctx: (in_flight * (1024 + g.max_completion_tokens)) as u32,
        n_seq_max: in_flight as u32,
        n_threads: cfg.threads as i32,
        ..Default::default()
    };
    let mut generator = Generator::new(model.clone(), &cp).map_err(|e| e.to_string())?;
    super::apply_adapter(&mut generator, &model, &path, args.adapter.as_deref())?;
    let mut params = RolloutParams {
        prompt: cfg.prompt.clone(),
        n_samples: 1,
        max_tokens: g.max_completion_tokens,
        stop_strings: g.stop_strings.clone(),
        sampling: g.sampling.clone(),
        ..RolloutParams::default()
    };
    params.sampling.temperature = args.temperature;
    let mut progress = Progress::new("eval", problems.len());
    let mut out = match &args.out {
        Some(p) => Some(std::fs::File::create(p).map_err(|e| format!("{p}: {e}"))?),
        None => None,
    };
    let (mut correct, mut write_err) = (0usize, None);
    let (report, _rows) = evaluate(
        &mut generator,
        &problems,
        &params,
        &g.rewards,
        &mut |i, row| {
            correct += row.correct as usize;
            let answer = extract_answer(&row.completion, &ExtractOptions::default());
            progress.line(&format!(
                "{:>4} {} {} gold {} | {} tokens",
                i + 1,
                report::mark(Some(row.correct)),
                report::shown(answer.as_deref()),
                row.answer.trim(),
                row.tokens
            ));
            if let Some(f) = out.as_mut() {
                let line = serde_json::to_string(row).unwrap_or_default();
                if let Err(e) = writeln!(f, "{line}") {
                    write_err = Some(e.to_string());
                }
            }
            progress.inc(&format!("acc {correct}/{}", i + 1));
        },
    )
    .map_err(|e| e.to_string())?;
    if let Some(e) = write_err {
        return Err(e);
    }
    let pct = |p: fmr::recipe::Proportion| {
        format!(
            "{:.1}% [{:.1}, {:.1}]",
            100.0 * p.value,
            100.0 * p.lo,
            100.0 * p.hi
        )
    };
    println!(
        "model {} | adapter {} | {} problems from {file}",
        model.description(),
        args.adapter.as_deref().unwrap_or("none"),
        report.n
    );
    println!(
        "accuracy {} | format rate {} | completion tokens mean {:.1} p90 {} | {:.0} s",
        pct(report.accuracy),
        pct(report.format_rate),
        report.mean_tokens,
        report.p90_tokens,
        report.wall_s
    );
    println!(
        "summary {}",
        serde_json::to_string(&report).map_err(|e| e.to_string())?
    );
    println!(
        "summary: {} problems | accuracy {:.1}% ({correct}/{}) | {:.0} tokens per problem | format rate {:.1}% | {:.1} s",
        report.n,
        100.0 * report.accuracy.value,
        report.n,
        report.mean_tokens,
        100.0 * report.format_rate.value,
        report.wall_s
    );
    Ok(())
}
