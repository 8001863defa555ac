//! solve: answer one problem, or every problem of a JSONL file, with a group of samples and
//! length-aware early stopping, and print what happened: each sample's answer as a person reads
//! it (✓/✗ against the gold answer when the data has one), the vote, the tokens early stopping
//! saved, and a summary line.
//!
//! Usage: solve [--model smollm2|PATH] [--problem TEXT | --file DATA.jsonl | --dataset NAME]
//!              [--limit N]
//!              [--params JSON] [--threads N] [--ctx N] [--stream] [--in-flight N]
//!              [--device cpu|cuda] [--gpu-layers N] [--main-gpu I] [--split-mode M] [--cpu-fallback]
//!
//! With several problems and no --stream, problems decode together (--in-flight samples at
//! once, default 16).

use fmr::engine::{ContextParams, Model};
use fmr::generate::{Generator, GroupResult, RolloutHooks, RolloutParams, TokenEvent};
use fmr_tools::report;
use std::io::Write;
use std::sync::Arc;

/// Parameters when --params is not given: 8 samples, stop the problem once half of them agree;
/// the last number counts as the answer when nothing is boxed (small models rarely box).
const DEFAULT_PARAMS: &str = r#"{"n_samples": 8, "max_tokens": 256, "consensus": {"rule": "k_of_n", "k": 4}, "answer": {"last_number_fallback": true}}"#;

struct Args {
    device: fmr_tools::args::DeviceArgs,
    model: String,
    problem: Option<String>,
    file: Option<String>,
    limit: Option<usize>,
    params: String,
    threads: i32,
    ctx: u32,
    stream: bool,
    in_flight: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        device: Default::default(),
        model: "smollm2".into(),
        problem: None,
        file: None,
        limit: None,
        params: String::new(),
        threads: 0,
        ctx: 0,
        stream: false,
        in_flight: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => a.model = val()?,
            "--problem" => a.problem = Some(val()?),
            "--file" => a.file = Some(val()?),
            "--dataset" => {
                let name = format!("{}.jsonl", val()?);
                let path = fmr_tools::data::shared_data(&name)
                    .ok_or_else(|| format!("data set {name} not found under shared/data"))?;
                a.file = Some(path.display().to_string());
            }
            "--limit" => a.limit = Some(val()?.parse().map_err(|e| format!("--limit: {e}"))?),
            "--params" => a.params = val()?,
            "--threads" => a.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--ctx" => a.ctx = val()?.parse().map_err(|e| format!("--ctx: {e}"))?,
            "--stream" => a.stream = true,
            "--in-flight" => {
                a.in_flight = val()?.parse().map_err(|e| format!("--in-flight: {e}"))?
            }
            "-h" | "--help" => {
                println!("usage: solve [--model smollm2|gemma3|PATH] [--problem TEXT | --file DATA.jsonl | --dataset gsm8k_test] [--limit N] [--params JSON] [--threads N] [--ctx N] [--stream] [--in-flight N] {}", fmr_tools::args::DeviceArgs::USAGE);
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

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let json = if args.params.is_empty() {
        DEFAULT_PARAMS
    } else {
        &args.params
    };
    let params = RolloutParams::from_json(json).map_err(|e| e.to_string())?;
    let path = fmr_tools::models::resolve_model(&args.model)?;
    let model = Arc::new(Model::load(&path, &args.device.params).map_err(|e| e.to_string())?);
    let problems: Vec<fmr_tools::data::Problem> = match (&args.problem, &args.file) {
        (Some(p), _) => vec![fmr_tools::data::Problem {
            question: p.clone(),
            gold: String::new(),
        }],
        (None, Some(f)) => fmr_tools::data::load_jsonl(std::path::Path::new(f), args.limit)?,
        (None, None) => return Err("give --problem TEXT or --file DATA.jsonl".into()),
    };
    // Samples decoding at once: one group when streaming or solving one problem, else
    // `--in-flight` (at least one group).
    let in_flight = if args.stream || problems.len() == 1 {
        params.n_samples
    } else {
        args.in_flight.max(params.n_samples)
    };
    let n_ctx = if args.ctx > 0 {
        args.ctx
    } else {
        (in_flight * (1024 + params.max_tokens + 64)) as u32
    };
    let cp = ContextParams {
        n_ctx,
        n_seq_max: in_flight as u32,
        n_threads: args.threads,
        ..Default::default()
    };
    let mut generator = Generator::new(model.clone(), &cp).map_err(|e| e.to_string())?;
    println!("model: {} ({})", model.description(), path.display());
    println!("{}", fmr_tools::args::device_line(&model));
    let opts = report::verify_options(&params);
    let mut tally = report::Tally::default();
    if args.stream || problems.len() == 1 {
        for (i, p) in problems.iter().enumerate() {
            let mut printer = |ev: &TokenEvent<'_>| {
                if ev.sample == 0 {
                    print!("{}", String::from_utf8_lossy(ev.piece));
                    let _ = std::io::stdout().flush();
                }
                true
            };
            let hooks = RolloutHooks {
                on_token: if args.stream {
                    Some(&mut printer)
                } else {
                    None
                },
                cancel: None,
            };
            let r = generator
                .solve(&p.question, &params, hooks)
                .map_err(|e| e.to_string())?;
            if args.stream {
                println!();
            }
            print_result(i, p, &r, &opts, &mut tally);
        }
    } else {
        // Several problems decode together (`--in-flight` samples at once); results are
        // printed in problem order as they complete.
        let requests = fmr_tools::data::group_requests(&model, &problems, &params)?;
        let started = std::time::Instant::now();
        let mut done: Vec<Option<Result<GroupResult, String>>> = vec![None; problems.len()];
        let mut next = 0;
        let mut failure = None;
        generator
            .rollout_many(requests, in_flight, None, &mut |i, r| {
                done[i] = Some(r.map_err(|e| e.to_string()));
                while next < done.len() {
                    match done[next].take() {
                        Some(Ok(r)) => print_result(next, &problems[next], &r, &opts, &mut tally),
                        Some(Err(e)) => {
                            println!("--- problem {} ---\nerror: {e}", next + 1);
                            failure.get_or_insert(e);
                        }
                        None => break,
                    }
                    next += 1;
                }
            })
            .map_err(|e| e.to_string())?;
        // Groups overlap in time: the summary gives the elapsed time, not their sum.
        tally.seconds = started.elapsed().as_secs_f64();
        if let Some(e) = failure {
            println!("{}", tally.summary_line());
            return Err(e);
        }
    }
    println!("{}", tally.summary_line());
    Ok(())
}

/// Prints one problem's samples, vote and token counts, and adds it to the tally.
fn print_result(
    i: usize,
    p: &fmr_tools::data::Problem,
    r: &GroupResult,
    opts: &fmr::answer::VerifyOptions,
    tally: &mut report::Tally,
) {
    let judged = report::judge(r, &p.gold, opts);
    println!("--- problem {} ---", i + 1);
    let answers: Vec<String> = r
        .samples
        .iter()
        .map(|s| report::shown(s.answer_display.as_deref()))
        .collect();
    let width = answers.iter().map(|a| a.chars().count()).max().unwrap_or(0);
    for (s, ((sample, correct), answer)) in r
        .samples
        .iter()
        .zip(&judged.samples)
        .zip(&answers)
        .enumerate()
    {
        println!(
            "sample {s}: {:>5} tokens, {:<9} {answer:<width$} {}",
            sample.tokens.len(),
            sample.finish_reason.as_str(),
            report::mark(*correct)
        );
    }
    let voted = r.voted_answer.as_deref().and_then(|k| r.answer_display(k));
    let others: Vec<String> = r
        .votes
        .iter()
        .skip(1)
        .map(|v| {
            format!(
                "{} ×{}",
                report::shown(r.answer_display(&v.answer)),
                v.count
            )
        })
        .collect();
    println!(
        "vote: {} {}{}{}{}",
        report::shown(voted),
        r.votes.first().map_or(String::new(), |v| format!(
            "({} of {})",
            v.count,
            r.samples.len()
        )),
        match judged.voted {
            Some(c) => format!(" {} gold {}", report::mark(Some(c)), p.gold.trim()),
            None => String::new(),
        },
        if others.is_empty() { "" } else { " | also " },
        others.join(", ")
    );
    println!(
        "tokens: {} generated, {} without early stopping (saved {:.0}%){}, {:.2} s",
        r.tokens_generated,
        r.tokens_fixed_budget,
        100.0 * (1.0 - r.tokens_generated as f64 / r.tokens_fixed_budget.max(1) as f64),
        if r.stopped_by_consensus {
            ", stopped by consensus"
        } else {
            ""
        },
        r.wall_seconds
    );
    tally.add(r, judged.voted);
}

fn main() {
    if let Err(e) = run() {
        eprintln!("solve: {e}");
        std::process::exit(1);
    }
}
