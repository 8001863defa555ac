//! The token scheduler's ONNX encoder on the real files set-up unpacks (`scripts/setup.sh
//! encoder`): all-MiniLM-L6-v2 int8 with its tokenizer.json, run by ONNX Runtime loaded at run
//! time from the PyPI wheel's libonnxruntime.so. Built with the `onnx` feature (on in the
//! workspace test run through fmr-tools' default features).
#![cfg(feature = "onnx")]

mod common;

use fmr::budget::{BudgetExample, BudgetModel, Encoder, OnnxEncoder};
use fmr::ErrorCode;
use std::path::PathBuf;

/// The encoder's files; panics with the set-up command when one is missing (no silent skip).
fn files() -> (PathBuf, PathBuf, PathBuf) {
    let dir = common::model_dir();
    let model = dir.join("minilm-l6-v2/model.onnx");
    let tokenizer = dir.join("minilm-l6-v2/tokenizer.json");
    let runtime = dir.join("onnxruntime/libonnxruntime.so.1.22.1");
    for p in [&model, &tokenizer, &runtime] {
        assert!(
            p.is_file(),
            "{} missing (run scripts/setup.sh encoder first)",
            p.display()
        );
    }
    (model, tokenizer, runtime)
}

fn encoder() -> OnnxEncoder {
    let (model, tokenizer, runtime) = files();
    OnnxEncoder::new(&model, &tokenizer, Some(&runtime), 1, 256).expect("encoder loads")
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn onnx_encoder_embeds_unit_vectors_that_place_paraphrases_together() {
    let mut enc = encoder();
    assert_eq!(enc.dim(), 384);
    let texts = [
        "Tom has 5 apples and buys 3 more. How many apples does he have now?",
        "Tom had five apples, then bought three more apples. How many apples does Tom have?",
        "Find all real x such that x^2 - 5x + 6 = 0.",
        "",
    ];
    let v = enc.embed(&texts).unwrap();
    assert_eq!(v.len(), texts.len());
    for (row, text) in v.iter().zip(&texts) {
        assert_eq!(row.len(), 384);
        assert!(row.iter().all(|x| x.is_finite()), "{text:?}");
        let norm = cosine(row, row).sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{text:?}: norm {norm}");
    }
    let (same, other) = (cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
    assert!(
        same > 0.8 && same > other + 0.3,
        "paraphrase {same}, other {other}"
    );
    // Deterministic, and a text's vector does not depend on the batch it is in.
    let again = enc.embed(&texts[..1]).unwrap();
    let diff = again[0]
        .iter()
        .zip(&v[0])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-5, "max |difference| {diff}");
}

#[test]
fn onnx_encoder_rejects_missing_and_corrupt_files() {
    let (model, tokenizer, runtime) = files();
    let missing = model.with_file_name("no-such-model.onnx");
    let e = OnnxEncoder::new(&missing, &tokenizer, Some(&runtime), 1, 256)
        .err()
        .expect("missing model is an error");
    assert_eq!(e.code(), ErrorCode::Io, "{e}");
    let dir = common::TempDir::new("onnx-corrupt");
    let bad_model = dir.0.join("model.onnx");
    std::fs::write(&bad_model, b"not an onnx model").unwrap();
    let e = OnnxEncoder::new(&bad_model, &tokenizer, Some(&runtime), 1, 256)
        .err()
        .expect("corrupt model is an error");
    assert_eq!(e.code(), ErrorCode::ModelLoad, "{e}");
    let bad_tokenizer = dir.0.join("tokenizer.json");
    std::fs::write(&bad_tokenizer, b"{\"truncated\": ").unwrap();
    let e = OnnxEncoder::new(&model, &bad_tokenizer, Some(&runtime), 1, 256)
        .err()
        .expect("corrupt tokenizer is an error");
    assert_eq!(e.code(), ErrorCode::ModelLoad, "{e}");
}

#[test]
fn budget_head_on_onnx_features_orders_held_out_problems_by_length() {
    // Three kinds of problem with typical solution lengths of 40, 120 and 240 tokens; the head
    // is fitted on even positions and must rank the odd ones (not fitted on) by length.
    let mut enc = encoder();
    let names = ["Ann", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana"];
    let items = ["pencils", "stickers", "cookies", "marbles"];
    let mut problems = Vec::new();
    let mut lengths = Vec::new();
    for i in 0..24usize {
        let (a, b, c) = (12 + 7 * i, 3 + i % 5, 2 + i % 3);
        let name = names[i % names.len()];
        let item = items[i % items.len()];
        let (text, len) = match i % 3 {
            0 => (format!("What is {a} + {b}?"), 40),
            1 => (
                format!(
                    "{name} buys {b} packs of {item} with {a} {item} in each pack and gives {c} {item} to each of {b} friends. How many {item} does {name} keep?"
                ),
                120,
            ),
            _ => (
                format!(
                    "A bag holds {a} red and {b} blue marbles. {name} draws {c} marbles without replacement. What is the probability that all of them are red? Give the answer as a fraction in lowest terms."
                ),
                240,
            ),
        };
        problems.push(text);
        lengths.push(vec![len - 5, len, len + 5]);
    }
    let texts: Vec<&str> = problems.iter().map(String::as_str).collect();
    let features = enc.embed(&texts).unwrap();
    let train: Vec<usize> = (0..24).step_by(2).collect();
    let test: Vec<usize> = (1..24).step_by(2).collect();
    let head = BudgetModel::fit(
        enc.spec(),
        &train
            .iter()
            .map(|&i| features[i].clone())
            .collect::<Vec<_>>(),
        &train
            .iter()
            .map(|&i| BudgetExample {
                problem: problems[i].clone(),
                lengths: lengths[i].clone(),
            })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let predicted: Vec<f64> = test
        .iter()
        .map(|&i| head.predict_mean(&features[i]).unwrap())
        .collect();
    let observed: Vec<f64> = test.iter().map(|&i| lengths[i][1] as f64).collect();
    let rho = fmr::budget::spearman(&predicted, &observed).unwrap();
    assert!(rho > 0.7, "held-out Spearman {rho}: {predicted:?}");
}
