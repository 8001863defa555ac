//! A corpus of corrupt copies of the default model, written by the test: damaged header fields,
//! metadata, truncations, tensor infos, and tensor data with NaN/inf scales. Every case goes
//! through the Rust API (engine and trainer) and the C API (a C program): each gives a clear
//! error, none panics or aborts, and nothing is printed on the host's streams.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::c_build::compile;
use common::gguf_edit::{poison_tensor, put_u32, put_u64, GgufMap};
use fmr::engine::{ContextParams, Model, ModelParams};
use fmr::generate::{Generator, RolloutHooks, RolloutParams};
use fmr::recipe::{RunConfig, Stage, Trainer};
use fmr::ErrorCode;

/// What a case must give: an error at load, or a model that loads and then fails with this
/// code when it generates (the NaN/inf cases).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    LoadError,
    GenerateError(ErrorCode),
}

const F16_NAN: u16 = 0x7E00;
const F16_INF: u16 = 0x7C00;

/// Writes the corpus into `dir`: (file, expected outcome), by case name.
fn write_corpus(dir: &Path) -> BTreeMap<String, (PathBuf, Expect)> {
    let map = GgufMap::read(&common::smollm2_path());
    let arch = "llama";
    let size = map.bytes.len();
    let mut cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("empty", Vec::new(), Expect::LoadError),
        (
            "bad_magic",
            map.edited(|b| b[..4].copy_from_slice(b"GGUX")),
            Expect::LoadError,
        ),
        (
            "bad_version",
            map.edited(|b| put_u32(b, 4, 99)),
            Expect::LoadError,
        ),
        (
            "huge_tensor_count",
            map.edited(|b| put_u64(b, map.n_tensors_at, u64::MAX / 2)),
            Expect::LoadError,
        ),
        (
            "huge_kv_count",
            map.edited(|b| put_u64(b, map.n_kv_at, 1 << 60)),
            Expect::LoadError,
        ),
        (
            "kv_bad_type",
            map.edited(|b| put_u32(b, map.kv["general.architecture"].0, 99)),
            Expect::LoadError,
        ),
        (
            "unknown_architecture",
            map.edited(|b| {
                let at = map.value_at("general.architecture") + 8; // after the string's length
                b[at..at + 5].copy_from_slice(b"zzzzz");
            }),
            Expect::LoadError,
        ),
        (
            "head_count_zero",
            map.edited(|b| put_u32(b, map.value_at(&format!("{arch}.attention.head_count")), 0)),
            Expect::LoadError,
        ),
        (
            "kv_head_count_zero",
            map.edited(|b| {
                put_u32(
                    b,
                    map.value_at(&format!("{arch}.attention.head_count_kv")),
                    0,
                )
            }),
            Expect::LoadError,
        ),
        (
            "block_count_huge",
            map.edited(|b| put_u32(b, map.value_at(&format!("{arch}.block_count")), 100_000)),
            Expect::LoadError,
        ),
        (
            "embedding_length_zero",
            map.edited(|b| put_u32(b, map.value_at(&format!("{arch}.embedding_length")), 0)),
            Expect::LoadError,
        ),
        (
            "tensor_type_unknown",
            map.edited(|b| put_u32(b, map.tensor("blk.0.attn_q.weight").type_at, 99)),
            Expect::LoadError,
        ),
        (
            "tensor_type_removed",
            map.edited(|b| put_u32(b, map.tensor("blk.0.attn_q.weight").type_at, 4)),
            Expect::LoadError,
        ),
        (
            "tensor_offset_outside_file",
            map.edited(|b| put_u64(b, map.tensor("output_norm.weight").offset_at, 1 << 40)),
            Expect::LoadError,
        ),
        (
            "tensor_dims_huge",
            map.edited(|b| put_u64(b, map.tensor("blk.0.attn_q.weight").dims_at, 1 << 40)),
            Expect::LoadError,
        ),
        (
            "truncated_header",
            map.bytes[..20].to_vec(),
            Expect::LoadError,
        ),
        (
            "truncated_metadata",
            map.bytes[..map.kv_end / 2].to_vec(),
            Expect::LoadError,
        ),
        (
            "truncated_tensor_infos",
            map.bytes[..(map.kv_end + map.infos_end) / 2].to_vec(),
            Expect::LoadError,
        ),
        (
            "truncated_data",
            map.bytes[..map.data_start + (size - map.data_start) / 2].to_vec(),
            Expect::LoadError,
        ),
        (
            "truncated_last_byte",
            map.bytes[..size - 1].to_vec(),
            Expect::LoadError,
        ),
    ];
    let nan = Expect::GenerateError(ErrorCode::NonFinite);
    let embd = map.tensor("token_embd.weight");
    cases.push((
        "nan_scales_token_embd",
        map.edited(|b| poison_tensor(b, embd, F16_NAN, f32::NAN)),
        nan,
    ));
    let q = map.tensor("blk.0.attn_q.weight");
    cases.push((
        "inf_scales_attn_q",
        map.edited(|b| poison_tensor(b, q, F16_INF, f32::INFINITY)),
        nan,
    ));
    let norm = map.tensor("output_norm.weight");
    cases.push((
        "nan_output_norm",
        map.edited(|b| poison_tensor(b, norm, F16_NAN, f32::NAN)),
        nan,
    ));
    cases
        .into_iter()
        .map(|(name, bytes, expect)| {
            let path = dir.join(format!("{name}.gguf"));
            std::fs::write(&path, bytes).unwrap();
            (name.to_string(), (path, expect))
        })
        .collect()
}

/// Through the Rust API: load, then (when it loads) one short group rollout.
fn rust_outcome(path: &Path) -> Result<(), (bool, fmr::Error)> {
    let model = Model::load(path, &ModelParams::default()).map_err(|e| (true, e))?;
    let cp = ContextParams {
        n_ctx: 512,
        n_seq_max: 2,
        n_threads: 1,
        ..Default::default()
    };
    let mut g = Generator::new(std::sync::Arc::new(model), &cp).map_err(|e| (false, e))?;
    let params = RolloutParams {
        n_samples: 2,
        max_tokens: 4,
        ..Default::default()
    };
    g.solve("What is 2 + 3?", &params, RolloutHooks::default())
        .map(|_| ())
        .map_err(|e| (false, e))
}

#[test]
fn corrupt_models_give_errors_through_the_rust_and_c_apis() {
    let dir = common::TempDir::new("corrupt");
    let corpus = write_corpus(&dir.0);

    // Rust API.
    for (name, (path, expect)) in &corpus {
        match (rust_outcome(path), expect) {
            (Err((true, e)), Expect::LoadError) => {
                assert_eq!(e.code(), ErrorCode::ModelLoad, "{name}: {e}");
            }
            (Err((false, e)), Expect::GenerateError(code)) => {
                assert_eq!(e.code(), *code, "{name}: {e}");
                assert!(e.message().contains("sample "), "{name}: {e}");
            }
            (got, _) => panic!("{name}: expected {expect:?}, got {got:?}"),
        }
    }

    // C API: one process for the whole corpus; it must not crash and must print nothing but
    // its own lines.
    let exe = dir.0.join("corrupt_models");
    compile("cc", "c11", "tests/c/corrupt_models.c", &exe, &[]);
    let files: Vec<&PathBuf> = corpus.values().map(|(p, _)| p).collect();
    let out = Command::new(&exe).args(&files).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "C program failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stderr.is_empty(), "the library wrote to stderr:\n{stderr}");
    println!("C API, one line per case:\n{stdout}");
    let lines: BTreeMap<&str, &str> = stdout
        .lines()
        .filter_map(|l| l.split_once(".gguf "))
        .collect();
    for (name, (_, expect)) in &corpus {
        let line = lines
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name}: no line from the C program:\n{stdout}"));
        let want = match expect {
            Expect::LoadError => format!("load {}", ErrorCode::ModelLoad as u32),
            Expect::GenerateError(c) => format!("solve {}", *c as u32),
        };
        assert!(
            line.starts_with(&want),
            "{name}: C API gave '{line}', expected '{want} …'"
        );
    }
}

#[test]
fn trainer_rejects_corrupt_models_and_fails_non_finite_steps_without_changes() {
    let dir = common::TempDir::new("corrupt-trainer");
    let corpus = write_corpus(&dir.0);
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/recipe_sft.jsonl"
    );
    for (name, (path, expect)) in &corpus {
        let cfg = serde_json::json!({
            "preset": "small", "model": path, "out_dir": dir.0.join(format!("run-{name}")),
            "threads": 1, "max_steps": 2, "lora": {"rank": 2, "alpha": 4, "targets": ["q"]},
            "data": {"train": data}, "sft": {"batch_size": 1, "micro_batch": 1, "max_seq_len": 96}
        });
        let cfg = RunConfig::from_json(&cfg.to_string()).unwrap();
        match (Trainer::new(cfg, Stage::Sft), expect) {
            (Err(e), Expect::LoadError) => {
                assert!(
                    matches!(e.code(), ErrorCode::ModelLoad | ErrorCode::Io),
                    "{name}: {e}"
                );
            }
            (Ok(mut t), Expect::GenerateError(_)) => {
                let before = t.lora().clone();
                let e = t
                    .sft_step(None)
                    .expect_err("a step on a NaN model must fail");
                assert_eq!(e.code(), ErrorCode::NonFinite, "{name}: {e}");
                assert!(
                    t.lora() == &before,
                    "{name}: the failed step changed the adapter"
                );
                assert_eq!(t.step_count(), 0, "{name}");
            }
            (Ok(_), Expect::LoadError) => panic!("{name}: the trainer loaded a corrupt model"),
            (Err(e), Expect::GenerateError(_)) => panic!("{name}: the trainer failed to load: {e}"),
        }
    }
}
