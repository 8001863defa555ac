//! Writes a random-weight GGUF of a real architecture, for tests and benchmarks.
//!
//! Usage: `cargo run --release --example random_gguf -- <preset> <type> <out.gguf> [seed]`
//! with preset one of `tiny-llama`, `tiny-qwen2`, `qwen2-0.5b`, `qwen2-1.5b`, `qwen2-7b`,
//! `qwen2-14b` and type one of `f32 f16 bf16 q4_0 q4_1 q8_0 q4_K q5_K q6_K`.

use std::path::Path;

use fmr::train::weights::{write_random_gguf, Arch, GgmlType, RandomModelSpec};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: random_gguf <preset> <type> <out.gguf> [seed]");
        std::process::exit(2);
    }
    let spec = match args[0].as_str() {
        "tiny-llama" => RandomModelSpec::tiny(Arch::Llama),
        "tiny-qwen2" => RandomModelSpec::tiny(Arch::Qwen2),
        "qwen2-0.5b" => RandomModelSpec::qwen2_0_5b(),
        "qwen2-1.5b" => RandomModelSpec::qwen2_1_5b(),
        "qwen2-7b" => RandomModelSpec::qwen2_7b(),
        "qwen2-14b" => RandomModelSpec::qwen2_14b(),
        other => {
            eprintln!("unknown preset {other}");
            std::process::exit(2);
        }
    };
    let Some(ty) = GgmlType::from_name(&args[1]) else {
        eprintln!("unsupported type {}", args[1]);
        std::process::exit(2);
    };
    let seed = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let spec = RandomModelSpec {
        weight_type: ty,
        seed,
        ..spec
    };
    if let Err(e) = write_random_gguf(&spec, Path::new(&args[2])) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    println!(
        "wrote {} ({:?}, {} layers, d={}, type {})",
        args[2],
        spec.arch,
        spec.n_layer,
        spec.n_embd,
        ty.name()
    );
}
