//! eval: accuracy and token use of group rollouts with early stopping over a JSONL data set.
//!
//! For each problem: N samples, majority vote (maj@N), per-sample accuracy (pass@1), tokens
//! generated, tokens a run without group-level stopping would have generated (upper bound) and
//! wall time. With `--baseline FILE` (the `--out` of a run without early stopping, same seeds) it
//! also reports the real token saving and how often the voted answer matches the baseline's.
//!
//! Usage: eval [--model smollm2|PATH] [--dataset gsm8k_test | --file DATA.jsonl] [--limit N]
//!             [--params JSON] [--threads N] [--out FILE.jsonl] [--baseline FILE.jsonl]
//!             [--texts FILE.jsonl]   (every completion as {"gold", "completion"}, for verifier studies)
//!             [--in-flight N]        (samples decoding together across problems, default 16)
//!             [--calibration-out FILE.json]  (lowest window confidences of the samples that ended
//!                                             on their own: a `confidence_stop` calibration file)
//!             [--budget-model DIR [--budget-encoder JSON] [--budget-quantile Q] [--budget-margin M]]
//!                                   (each problem's max_tokens from the token scheduler: the
//!                                    predicted Q-quantile of its lengths × M, at most max_tokens)

mod heldout;

use fmr::engine::{ContextParams, Model};
use fmr::generate::{Generator, GroupResult, RolloutParams};
use fmr_tools::progress::Progress;
use fmr_tools::report;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::sync::Arc;

/// Parameters when --params is not given (chosen before any evaluation was run): 8 samples of
/// at most 256 tokens, stop once half of them agree; the last number counts as the answer when
/// nothing is boxed (small models rarely box).
const DEFAULT_PARAMS: &str = r#"{"n_samples": 8, "max_tokens": 256, "consensus": {"rule": "k_of_n", "k": 4}, "answer": {"last_number_fallback": true}}"#;

struct Args {
    device: fmr_tools::args::DeviceArgs,
    model: String,
    file: Option<String>,
    limit: Option<usize>,
    params: String,
    threads: i32,
    out: Option<String>,
    baseline: Option<String>,
    texts: Option<String>,
    config: Option<String>,
    adapter: Option<String>,
    temperature: f32,
    in_flight: usize,
    calibration_out: Option<String>,
    budget: fmr_tools::budget_cli::BudgetArgs,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        device: Default::default(),
        model: "smollm2".into(),
        file: None,
        limit: None,
        params: DEFAULT_PARAMS.into(),
        threads: 2,
        out: None,
        baseline: None,
        texts: None,
        config: None,
        adapter: None,
        temperature: 0.0,
        in_flight: 16,
        calibration_out: None,
        budget: Default::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => a.model = val()?,
            "--file" => a.file = Some(val()?),
            "--dataset" => {
                let name = format!("{}.jsonl", val()?);
                let p = fmr_tools::data::shared_data(&name)
                    .ok_or_else(|| format!("data set {name} not found under shared/data"))?;
                a.file = Some(p.display().to_string());
            }
            "--limit" => a.limit = Some(val()?.parse().map_err(|e| format!("--limit: {e}"))?),
            "--params" => a.params = val()?,
            "--threads" => a.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--out" => a.out = Some(val()?),
            "--baseline" => a.baseline = Some(val()?),
            "--texts" => a.texts = Some(val()?),
            "--config" => a.config = Some(val()?),
            "--adapter" => a.adapter = Some(val()?),
            "--in-flight" => {
                a.in_flight = val()?.parse().map_err(|e| format!("--in-flight: {e}"))?
            }
            "--calibration-out" => a.calibration_out = Some(val()?),
            f if a.budget.parse(f, &mut val)? => {}
            "--temperature" => {
                a.temperature = val()?.parse().map_err(|e| format!("--temperature: {e}"))?
            }
            "-h" | "--help" => {
                println!("usage: eval [--model smollm2|PATH] [--dataset NAME | --file DATA.jsonl] [--limit N] [--params JSON] [--threads N] [--out FILE] [--baseline FILE] [--texts FILE] [--adapter GGUF|PEFT_DIR|CHECKPOINT] [--in-flight N] {}\n       eval --config RUN.json --file HELDOUT.jsonl [--adapter ...] [--temperature T] [--limit N] [--out ROWS.jsonl] [--in-flight N]   (held-out report: accuracy, format rate, tokens)", fmr_tools::args::DeviceArgs::USAGE);
                std::process::exit(0);
            }
            other => {
                if !a.device.take(other, &mut val)? {
                    return Err(format!("unknown argument {other}"));
                }
            }
        }
    }
    Ok(a)
}

#[derive(Serialize, Deserialize)]
struct SampleRecord {
    tokens: usize,
    finish: String,
    /// The answer key (canonical form, for comparing runs).
    key: Option<String>,
    /// The answer as a person reads it.
    #[serde(default)]
    answer: Option<String>,
    correct: bool,
    /// Confidence summary (mean, lowest window, tail).
    #[serde(default)]
    confidence: Option<fmr::generate::SampleConfidence>,
    /// Per-token confidences (for replaying confidence rules).
    #[serde(default)]
    token_confidence: Vec<f32>,
    /// Answer probes taken.
    #[serde(default)]
    probes: Vec<fmr::generate::ProbeRecord>,
    #[serde(default)]
    probe_tokens: usize,
}

#[derive(Serialize, Deserialize)]
struct ProblemRecord {
    index: usize,
    /// The problem text.
    #[serde(default)]
    problem: String,
    gold: String,
    /// The voted answer's key.
    voted: Option<String>,
    /// The voted answer as a person reads it.
    #[serde(default)]
    voted_answer: Option<String>,
    voted_count: usize,
    voted_correct: bool,
    samples: Vec<SampleRecord>,
    tokens_generated: usize,
    tokens_fixed_budget: usize,
    stopped_by_consensus: bool,
    wall_seconds: f64,
    /// Tokens decoded by answer probes (apart from tokens_generated).
    #[serde(default)]
    probe_tokens: usize,
    /// The token budget the scheduler gave this problem (`--budget-model`).
    #[serde(default)]
    max_tokens: Option<usize>,
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    if args.config.is_some() {
        return heldout::run(&args);
    }
    let file = args
        .file
        .clone()
        .ok_or("give --dataset NAME or --file DATA.jsonl")?;
    let problems = fmr_tools::data::load_jsonl(std::path::Path::new(&file), args.limit)?;
    let params = RolloutParams::from_json(&args.params).map_err(|e| e.to_string())?;
    let verify_opts = report::verify_options(&params);
    let path = fmr_tools::models::resolve_model(&args.model)?;
    let model = Arc::new(Model::load(&path, &args.device.params).map_err(|e| e.to_string())?);
    // Problems decode together: `--in-flight` sequences (samples, and probes) at once.
    let per_group = params.sequences_needed();
    let in_flight = args.in_flight.max(params.n_samples) * per_group / params.n_samples;
    let probe_room = params.probe.as_ref().map_or(0, |p| p.max_tokens + 64);
    let cp = ContextParams {
        n_ctx: (in_flight * (1024 + params.max_tokens + 64 + probe_room)) as u32,
        n_seq_max: in_flight as u32,
        n_threads: args.threads,
        ..Default::default()
    };
    let mut generator = Generator::new(model.clone(), &cp).map_err(|e| e.to_string())?;
    apply_adapter(&mut generator, &model, &path, args.adapter.as_deref())?;
    let create = |p: &Option<String>| -> Result<Option<std::fs::File>, String> {
        p.as_ref()
            .map(|p| std::fs::File::create(p).map_err(|e| format!("{p}: {e}")))
            .transpose()
    };
    let mut out = create(&args.out)?;
    let mut texts = create(&args.texts)?;
    println!(
        "model: {} | data: {file} ({} problems)",
        model.description(),
        problems.len()
    );
    println!("{}", fmr_tools::args::device_line(&model));
    println!(
        "params: {}",
        serde_json::to_string(&params).map_err(|e| e.to_string())?
    );
    let texts_of: Vec<&str> = problems.iter().map(|p| p.question.as_str()).collect();
    let budgets = args
        .budget
        .predict(&model, &params, &texts_of, args.threads)?;
    if let Some(b) = &budgets {
        let mean = b.iter().sum::<usize>() as f64 / b.len().max(1) as f64;
        println!(
            "token scheduler: max_tokens per problem from {} (mean {mean:.0}, cap {})",
            args.budget.describe(),
            params.max_tokens
        );
    }
    let mut progress = Progress::new("eval", problems.len());
    let mut requests = fmr_tools::data::group_requests(&model, &problems, &params)?;
    if let Some(b) = &budgets {
        for (request, budget) in requests.iter_mut().zip(b) {
            request.params.max_tokens = *budget;
        }
    }
    // Each problem is judged and written as it finishes (a long run killed early keeps what
    // it has); the report below sorts them back into problem order.
    let mut records = Vec::with_capacity(problems.len());
    let mut calibration: Vec<f64> = Vec::new();
    let mut tally = report::Tally::default();
    let mut handle = |index: usize, r: fmr::Result<GroupResult>| -> Result<(), String> {
        let p = &problems[index];
        let r = r.map_err(|e| format!("problem {index}: {e}"))?;
        let judged = report::judge(&r, &p.gold, &verify_opts);
        let samples: Vec<SampleRecord> = r
            .samples
            .iter()
            .zip(&judged.samples)
            .map(|(s, c)| SampleRecord {
                tokens: s.tokens.len(),
                finish: s.finish_reason.as_str().to_string(),
                key: s.answer.clone(),
                answer: s.answer_display.clone(),
                correct: *c == Some(true),
                confidence: s.confidence,
                token_confidence: s.token_confidence.clone(),
                probes: s.probes.clone(),
                probe_tokens: s.probe_tokens,
            })
            .collect();
        for s in &r.samples {
            if s.finish_reason.ended_naturally() {
                if let Some(c) = s.confidence {
                    calibration.push(c.lowest_window as f64);
                }
            }
        }
        let voted_correct = judged.voted == Some(true);
        tally.add(&r, judged.voted);
        let voted_answer = r
            .voted_answer
            .as_deref()
            .and_then(|k| r.answer_display(k))
            .map(str::to_string);
        progress.line(&format!(
            "{:>4} {} {} ({} of {}) gold {} | {} tokens, {:.1} s",
            index + 1,
            report::mark(judged.voted),
            report::shown(voted_answer.as_deref()),
            r.votes.first().map_or(0, |v| v.count),
            r.samples.len(),
            p.gold.trim(),
            r.tokens_generated,
            r.wall_seconds
        ));
        if let Some(f) = texts.as_mut() {
            for s in &r.samples {
                let line = serde_json::json!({"gold": p.gold, "completion": s.text});
                writeln!(f, "{line}").map_err(|e| e.to_string())?;
            }
        }
        let rec = ProblemRecord {
            index,
            problem: p.question.clone(),
            gold: p.gold.clone(),
            voted: r.voted_answer.clone(),
            voted_answer,
            voted_count: r.votes.first().map_or(0, |v| v.count),
            voted_correct,
            samples,
            tokens_generated: r.tokens_generated,
            tokens_fixed_budget: r.tokens_fixed_budget,
            stopped_by_consensus: r.stopped_by_consensus,
            wall_seconds: r.wall_seconds,
            probe_tokens: r.probe_tokens,
            max_tokens: budgets.as_ref().map(|b| b[index]),
        };
        if let Some(f) = out.as_mut() {
            let line = serde_json::to_string(&rec).map_err(|e| e.to_string())?;
            writeln!(f, "{line}").map_err(|e| e.to_string())?;
        }
        records.push(rec);
        progress.inc("");
        Ok(())
    };
    let mut failure: Option<String> = None;
    generator
        .rollout_many(requests, in_flight, None, &mut |i, r| {
            if failure.is_none() {
                failure = handle(i, r).err();
            }
        })
        .map_err(|e| e.to_string())?;
    if let Some(e) = failure {
        return Err(e);
    }
    records.sort_by_key(|r| r.index);
    if let Some(path) = &args.calibration_out {
        let c = fmr::generate::Calibration {
            top_k: params.confidence.top_k,
            window: params.confidence.window,
            confidences: calibration,
        };
        let json = serde_json::to_string(&c).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{path}: {e}"))?;
    }
    report(&records, &params, args.baseline.as_deref())?;
    println!("{}", tally.summary_line());
    Ok(())
}

/// Applies `--adapter` (GGUF LoRA, PEFT folder or fmr checkpoint) to the generator, if given.
fn apply_adapter(
    generator: &mut Generator,
    model: &Arc<Model>,
    model_path: &std::path::Path,
    adapter: Option<&str>,
) -> Result<(), String> {
    let Some(a) = adapter else { return Ok(()) };
    let adapter = fmr::recipe::load_engine_adapter(model.clone(), model_path, a.as_ref())
        .map_err(|e| e.to_string())?;
    generator
        .context_mut()
        .set_adapters(&[(adapter, 1.0)])
        .map_err(|e| e.to_string())
}

fn report(
    records: &[ProblemRecord],
    params: &RolloutParams,
    baseline: Option<&str>,
) -> Result<(), String> {
    let n = records.len().max(1) as f64;
    let maj = records.iter().filter(|r| r.voted_correct).count() as f64 / n;
    let n_samples: usize = records.iter().map(|r| r.samples.len()).sum();
    let pass1 = records
        .iter()
        .flat_map(|r| &r.samples)
        .filter(|s| s.correct)
        .count() as f64
        / n_samples.max(1) as f64;
    let tokens: usize = records.iter().map(|r| r.tokens_generated).sum();
    let probe_tokens: usize = records.iter().map(|r| r.probe_tokens).sum();
    let fixed: usize = records.iter().map(|r| r.tokens_fixed_budget).sum();
    let wall: f64 = records.iter().map(|r| r.wall_seconds).sum();
    let stopped = records.iter().filter(|r| r.stopped_by_consensus).count();
    println!();
    println!("problems            {}", records.len());
    println!("maj@{}               {:.1}%", params.n_samples, 100.0 * maj);
    println!("pass@1              {:.1}%", 100.0 * pass1);
    println!("mean tokens/problem {:.1}", tokens as f64 / n);
    if probe_tokens > 0 {
        println!(
            "probe tokens        {probe_tokens} ({:.1} per problem, apart from the above)",
            probe_tokens as f64 / n
        );
    }
    println!(
        "tokens saved        {:.1}% vs a fixed budget (upper bound: cut samples counted at max_tokens)",
        100.0 * (1.0 - tokens as f64 / fixed.max(1) as f64)
    );
    println!("stopped by consensus {stopped} of {}", records.len());
    println!(
        "time                {wall:.1} s ({:.1} tokens/s)",
        tokens as f64 / wall.max(1e-9)
    );
    if let Some(path) = baseline {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let base: Vec<ProblemRecord> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| format!("{path}: {e}")))
            .collect::<Result<_, _>>()?;
        let paired: Vec<(&ProblemRecord, &ProblemRecord)> = records
            .iter()
            .filter_map(|r| base.iter().find(|b| b.index == r.index).map(|b| (r, b)))
            .collect();
        let m = paired.len().max(1) as f64;
        let base_tokens: usize = paired.iter().map(|(_, b)| b.tokens_generated).sum();
        let ours_tokens: usize = paired.iter().map(|(r, _)| r.tokens_generated).sum();
        let same_vote = paired.iter().filter(|(r, b)| r.voted == b.voted).count();
        let base_maj = paired.iter().filter(|(_, b)| b.voted_correct).count() as f64 / m;
        let ours_maj = paired.iter().filter(|(r, _)| r.voted_correct).count() as f64 / m;
        println!();
        println!("against baseline {path} ({} problems)", paired.len());
        println!(
            "tokens              {ours_tokens} vs {base_tokens}: {:.1}% fewer",
            100.0 * (1.0 - ours_tokens as f64 / base_tokens.max(1) as f64)
        );
        println!("same voted answer   {same_vote} of {}", paired.len());
        println!(
            "maj accuracy        {:.1}% vs {:.1}% ({:+.1} points)",
            100.0 * ours_maj,
            100.0 * base_maj,
            100.0 * (ours_maj - base_maj)
        );
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("eval: {e}");
        std::process::exit(1);
    }
}
