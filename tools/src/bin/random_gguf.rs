//! Writes a random-weight GGUF of a real architecture, for tests and benchmarks.
//!
//! Usage: `cargo run --release --bin random_gguf -- <preset> <type> <out.gguf> [seed]
//! [--vocab N] [--layers N] [--tied] [--tokenizer-from MODEL.gguf]` with preset one of `tiny-llama`,
//! `tiny-qwen2`, `tiny-qwen3`, `tiny-gemma3`, `small-llama`, `small-qwen2` (d = 256, shapes
//! every quantized type can store), `qwen2-0.5b`, `qwen2-1.5b`, `qwen2-7b`, `qwen2-14b`,
//! `qwen3-0.6b`, `qwen3-1.7b`, `qwen3-8b`, `qwen3-14b`, `gemma3-270m`, `gemma3-1b`, and type one of
//! `f32 f16 bf16 q4_0 q4_1 q8_0 q4_K q5_K q6_K`. `--tokenizer-from` copies a model's tokenizer
//! (the vocabulary size becomes its token count), so llama.cpp can generate with the result.

use std::path::{Path, PathBuf};

use fmr::train::weights::{write_random_gguf, Arch, GgmlType, GgufFile, RandomModelSpec};

fn small(arch: Arch) -> RandomModelSpec {
    RandomModelSpec {
        n_vocab: 1024,
        n_embd: 256,
        n_layer: 2,
        n_head: 4,
        n_head_kv: 2,
        n_ff: 512,
        n_ctx: 2048,
        ..RandomModelSpec::tiny(arch)
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut pos = Vec::new();
    let (mut vocab, mut layers, mut tok_from) = (None, None, None::<PathBuf>);
    let mut tied = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--vocab" => vocab = Some(val()?.parse::<usize>().map_err(|e| e.to_string())?),
            "--layers" => layers = Some(val()?.parse::<usize>().map_err(|e| e.to_string())?),
            "--tokenizer-from" => tok_from = Some(PathBuf::from(val()?)),
            "--tied" => tied = true,
            _ => pos.push(a),
        }
    }
    if pos.len() < 3 {
        return Err(
            "usage: random_gguf <preset> <type> <out.gguf> [seed] [--vocab N] \
                    [--layers N] [--tokenizer-from MODEL.gguf]"
                .into(),
        );
    }
    let spec = match pos[0].as_str() {
        "tiny-llama" => RandomModelSpec::tiny(Arch::Llama),
        "tiny-qwen2" => RandomModelSpec::tiny(Arch::Qwen2),
        "small-llama" => small(Arch::Llama),
        "small-qwen2" => small(Arch::Qwen2),
        "qwen2-0.5b" => RandomModelSpec::qwen2_0_5b(),
        "qwen2-1.5b" => RandomModelSpec::qwen2_1_5b(),
        "qwen2-7b" => RandomModelSpec::qwen2_7b(),
        "qwen2-14b" => RandomModelSpec::qwen2_14b(),
        "tiny-qwen3" => RandomModelSpec::tiny(Arch::Qwen3),
        "tiny-gemma3" => RandomModelSpec::tiny(Arch::Gemma3),
        "qwen3-0.6b" => RandomModelSpec::qwen3_0_6b(),
        "qwen3-1.7b" => RandomModelSpec::qwen3_1_7b(),
        "qwen3-8b" => RandomModelSpec::qwen3_8b(),
        "qwen3-14b" => RandomModelSpec::qwen3_14b(),
        "gemma3-270m" => RandomModelSpec::gemma3_270m(),
        "gemma3-1b" => RandomModelSpec::gemma3_1b(),
        other => return Err(format!("unknown preset {other}")),
    };
    let ty = GgmlType::from_name(&pos[1]).ok_or_else(|| format!("unsupported type {}", pos[1]))?;
    let seed = pos.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut spec = RandomModelSpec {
        weight_type: ty,
        seed,
        ..spec
    };
    if let Some(v) = vocab {
        spec.n_vocab = v;
    }
    if let Some(l) = layers {
        spec.n_layer = l;
    }
    spec.tied_output |= tied;
    if let Some(src) = tok_from {
        let g = GgufFile::open(&src).map_err(|e| e.to_string())?;
        if let Some(fmr::train::weights::GgufValue::Array(n)) = g.get("tokenizer.ggml.tokens") {
            spec.n_vocab = n;
        }
        spec.tokenizer_from = Some(src);
    }
    write_random_gguf(&spec, Path::new(&pos[2])).map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({:?}, {} layers, d={}, vocab={}, type {})",
        pos[2],
        spec.arch,
        spec.n_layer,
        spec.n_embd,
        spec.n_vocab,
        ty.name()
    );
    Ok(())
}
