//! Shared command line of the `sft` and `grpo` programs:
//! `sft|grpo --config RUN.json [--max-steps N] [--max-minutes M] [--out-dir DIR] [--no-chart]`.
//! The model may be named as set-up knows it (`smollm2`, `gemma3`); the run draws `chart.png`
//! unless `--no-chart` is given or the configuration says `"chart": null`.
//! Prints one line per step (and a progress bar on a terminal); Ctrl-C is not trapped: a killed
//! run resumes from its last checkpoint when started again with the same configuration.

use fmr::recipe::{RunConfig, Stage, StepMetrics, Trainer};

use crate::progress::Progress;

pub fn main_for(stage: Stage) {
    if let Err(e) = run(stage) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(stage: Stage) -> Result<(), String> {
    let mut config = None;
    let (mut max_steps, mut max_minutes, mut out_dir) = (None, None, None);
    let (mut validation_only, mut no_chart) = (false, false);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--config" => config = Some(val()?),
            "--max-steps" => max_steps = Some(val()?.parse::<u64>().map_err(|e| e.to_string())?),
            "--max-minutes" => {
                max_minutes = Some(val()?.parse::<f64>().map_err(|e| e.to_string())?)
            }
            "--out-dir" => out_dir = Some(val()?),
            "--validation-only" => validation_only = true,
            "--no-chart" => no_chart = true,
            "-h" | "--help" => {
                println!(
                    "usage: {} --config RUN.json [--max-steps N] [--max-minutes M] [--out-dir DIR] [--validation-only] [--no-chart]",
                    stage.as_str()
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let config = config.ok_or("give --config RUN.json")?;
    let mut cfg = RunConfig::from_file(config.as_ref()).map_err(|e| e.to_string())?;
    if let Some(s) = max_steps {
        cfg.max_steps = s;
    }
    if let Some(m) = max_minutes {
        cfg.max_minutes = Some(m);
    }
    if let Some(d) = out_dir {
        cfg.out_dir = d.into();
    }
    cfg.model = crate::models::resolve_model_path(&cfg.model)?;
    if no_chart {
        cfg.chart = None;
    } else if cfg.chart.is_none() && !config_disables_chart(&config)? {
        cfg.chart = Some(fmr::recipe::ChartOptions::default());
    }
    if let Some(c) = cfg.chart.as_mut() {
        if c.font.is_none() {
            c.font = crate::chart_font::find_chart_font();
        }
    }
    let mut t = Trainer::new(cfg, stage).map_err(|e| e.to_string())?;
    let resumed = t.step_count();
    if validation_only {
        // The adapter as it stands (checkpoint, init_adapter, or the fresh zero-update LoRA).
        let v = t.validation_loss().map_err(|e| e.to_string())?;
        println!("validation loss after {resumed} steps: {v:.4} nats/token");
        return Ok(());
    }
    println!(
        "{} | model {} | {} rows | out {} | {}",
        stage.as_str(),
        t.engine_model().description(),
        t.data().len(),
        t.config().out_dir.display(),
        if resumed > 0 {
            format!("resumed at step {resumed}")
        } else {
            "fresh start".into()
        }
    );
    // A bar over the planned steps; a run bounded only by time prints step lines alone.
    let total = t.planned_steps() as usize;
    let mut bar = (total > 0).then(|| Progress::new(stage.as_str(), total));
    if let Some(b) = bar.as_mut() {
        for _ in 0..resumed.min(total as u64) {
            b.inc("");
        }
    }
    let mut on_step = |m: &StepMetrics| {
        println!("{}", step_line(m));
        if let Some(b) = bar.as_mut() {
            b.inc(&format!("loss {:.3}", m.loss));
        }
        true
    };
    let end = t.run(&mut on_step, None).map_err(|e| e.to_string())?;
    println!(
        "done ({end:?}) after {} steps, {:.0} s; outputs in {}",
        t.step_count(),
        t.elapsed_s(),
        t.config().out_dir.display()
    );
    Ok(())
}

/// True when the configuration file says `"chart": null` explicitly.
fn config_disables_chart(path: &str) -> Result<bool, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    Ok(v.get("chart").is_some_and(|c| c.is_null()))
}

fn step_line(m: &StepMetrics) -> String {
    match m.stage.as_str() {
        "sft" => format!(
            "step {} loss {:.4}{} lr {:.2e} gnorm {:.3} tok/s {:.0} t {:.0}s",
            m.step,
            m.loss,
            m.val_loss
                .map(|v| format!(" val {v:.4}"))
                .unwrap_or_default(),
            m.lr,
            m.grad_norm,
            m.train_tokens_per_s,
            m.elapsed_s
        ),
        _ => format!(
            "step {} reward {:.3}±{:.3} acc {:.3} fmt {:.3} len {:.1} (max {}) kl {:.4} clip {:.3} loss {:.4} gnorm {:.3} lr {:.2e} | roll {:.0}s score {:.1}s train {:.0}s t {:.0}s",
            m.step,
            m.reward.mean,
            m.reward.std,
            m.accuracy,
            m.format_rate,
            m.completion_tokens_mean,
            m.completion_tokens_max,
            m.kl,
            m.clip_fraction,
            m.loss,
            m.grad_norm,
            m.lr,
            m.time_rollout_s,
            m.time_scoring_s,
            m.time_training_s,
            m.elapsed_s
        ),
    }
}
