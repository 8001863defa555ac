//! Cross-check of fmr's PEFT adapter files with Hugging Face PEFT (scripts/device/peft_check.py
//! runs the PEFT side where transformers and peft are installed).
//!
//! - `peft_check export MODEL.gguf DIR`: writes a random adapter (non-zero B) as PEFT files to
//!   `DIR/ours`, three random token sequences to `DIR/seqs.json`, and fmr's per-token log-probs
//!   of them under the adapter to `DIR/ours_logprobs.json`.
//! - `peft_check score MODEL.gguf ADAPTER_DIR SEQS.json OUT.json`: loads a PEFT adapter (one
//!   PEFT wrote) and writes fmr's log-probs of the sequences to `OUT.json`.
//!
//! Log-probs JSON: `{"logprobs": [[f32; len - 1]; n]}`; sequences: `{"seqs": [[u32]]}`.

use std::path::Path;
use std::sync::Arc;

use fmr::adapter::{load_peft, save_peft};
use fmr::train::lora::{LoraConfig, LoraTarget, LoraWeights};
use fmr::train::model::{SeqRef, Transformer};
use fmr::train::rng::Rng;
use fmr::train::weights::GgufModel;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<(), String> {
    std::fs::write(path, v.to_string()).map_err(|e| format!("{}: {e}", path.display()))
}

fn logprobs(
    tf: &Transformer,
    lora: &LoraWeights,
    seqs: &[Vec<u32>],
) -> Result<Vec<Vec<f32>>, String> {
    let refs: Vec<SeqRef> = seqs.iter().map(|s| SeqRef::all(s)).collect();
    tf.logprobs(Some(lora), &refs).map_err(|e| e.to_string())
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: peft_check export MODEL.gguf DIR | peft_check score MODEL.gguf ADAPTER_DIR SEQS.json OUT.json";
    let model_path = args.get(1).ok_or(usage)?;
    let model = Arc::new(GgufModel::open(model_path).map_err(|e| e.to_string())?);
    let tf = Transformer::new(model.clone(), 0).map_err(|e| e.to_string())?;
    match args.first().map(String::as_str) {
        Some("export") => {
            let dir = Path::new(args.get(2).ok_or(usage)?);
            let cfg = LoraConfig {
                rank: 8,
                alpha: 16.0,
                targets: LoraTarget::ALL.to_vec(),
                seed: 3,
            };
            let mut lora = LoraWeights::new(&cfg, &model).map_err(|e| e.to_string())?;
            let mut rng = Rng::new(4);
            for (i, p) in lora.params_mut().iter_mut().enumerate() {
                if i % 2 == 1 {
                    p.iter_mut().for_each(|v| *v = 0.05 * rng.normal());
                }
            }
            save_peft(&lora, model.arch(), model.hp(), &dir.join("ours"), "random")
                .map_err(|e| e.to_string())?;
            let v = model.hp().n_vocab as u64;
            let seqs: Vec<Vec<u32>> = [50usize, 80, 31]
                .iter()
                .map(|&n| (0..n).map(|_| (rng.next_u64() % v) as u32).collect())
                .collect();
            let lp = logprobs(&tf, &lora, &seqs)?;
            write_json(&dir.join("seqs.json"), &serde_json::json!({ "seqs": seqs }))?;
            write_json(
                &dir.join("ours_logprobs.json"),
                &serde_json::json!({ "logprobs": lp }),
            )?;
            println!(
                "peft_check: adapter and log-probs written to {}",
                dir.display()
            );
        }
        Some("score") => {
            let (adapter, seqs_path, out) = match &args[2..] {
                [a, s, o, ..] => (Path::new(a), Path::new(s), Path::new(o)),
                _ => return Err(usage.into()),
            };
            let lora = load_peft(adapter, model.arch(), model.hp()).map_err(|e| e.to_string())?;
            let text = std::fs::read_to_string(seqs_path).map_err(|e| e.to_string())?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let seqs: Vec<Vec<u32>> =
                serde_json::from_value(v["seqs"].clone()).map_err(|e| e.to_string())?;
            let lp = logprobs(&tf, &lora, &seqs)?;
            write_json(out, &serde_json::json!({ "logprobs": lp }))?;
            println!(
                "peft_check: fmr log-probs with {} written to {}",
                adapter.display(),
                out.display()
            );
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
