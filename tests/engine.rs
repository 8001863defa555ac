//! The engine on the real default model: loading, tokenizer, templates, and bad input.

mod common;

use fmr::engine::{ChatMessage, Context, ContextParams, LoraAdapter, Model, ModelParams};
use fmr::ErrorCode;
use std::sync::Arc;

#[test]
fn loads_and_describes_the_model() {
    let m = common::smollm2();
    assert_eq!(m.meta("general.architecture").as_deref(), Some("llama"));
    assert_eq!(m.n_vocab(), 49152);
    assert!(m.n_layer() > 0);
    assert!(m.eos().is_some());
}

#[test]
fn tokenize_detokenize_round_trip() {
    let m = common::smollm2();
    let text = "Natalia sold clips to 48 of her friends in April.";
    let toks = m.tokenize(text, false, false).unwrap();
    assert!(!toks.is_empty());
    assert_eq!(m.detokenize(&toks, false), text);
}

#[test]
fn chat_template_from_the_model_and_by_name() {
    let m = common::smollm2();
    let msgs = [
        ChatMessage::new("system", "S"),
        ChatMessage::new("user", "U"),
    ];
    let own = m.apply_chat_template(None, &msgs, true).unwrap();
    assert!(own.contains("<|im_start|>user\nU<|im_end|>"), "{own}");
    assert!(own.ends_with("<|im_start|>assistant\n"), "{own}");
    let named = m.apply_chat_template(Some("chatml"), &msgs, true).unwrap();
    assert_eq!(own, named);
    let toks = m.tokenize(&own, true, true).unwrap();
    let im_start = m.tokenize("<|im_start|>", false, true).unwrap();
    assert_eq!(im_start.len(), 1, "special token must be parsed");
    assert!(toks.contains(&im_start[0]));
}

#[test]
fn missing_model_file_is_a_clear_error() {
    let e = Model::load("/nonexistent/model.gguf", &ModelParams::default())
        .err()
        .unwrap();
    assert_eq!(e.code(), ErrorCode::ModelLoad);
    assert!(e.message().contains("cannot open"), "{}", e.message());
}

#[test]
fn non_gguf_and_truncated_files_are_errors() {
    let dir = common::TempDir::new("engine");
    let junk = dir.0.join("junk.gguf");
    std::fs::write(&junk, b"this is not a model at all").unwrap();
    let e = Model::load(&junk, &ModelParams::default()).err().unwrap();
    assert_eq!(e.code(), ErrorCode::ModelLoad);
    assert!(e.message().contains("not a GGUF"), "{}", e.message());

    let empty = dir.0.join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(
        Model::load(&empty, &ModelParams::default())
            .err()
            .unwrap()
            .code(),
        ErrorCode::ModelLoad
    );

    // The real model cut to its first megabyte: header intact, tensor data missing.
    let bytes = std::fs::read(common::smollm2_path()).unwrap();
    let cut = dir.0.join("cut.gguf");
    std::fs::write(&cut, &bytes[..1 << 20]).unwrap();
    let e = Model::load(&cut, &ModelParams::default()).err().unwrap();
    assert_eq!(e.code(), ErrorCode::ModelLoad);

    // A corrupted header (tensor count overwritten with garbage).
    let mut bad = bytes[..1 << 20].to_vec();
    bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let badp = dir.0.join("bad.gguf");
    std::fs::write(&badp, &bad).unwrap();
    assert_eq!(
        Model::load(&badp, &ModelParams::default())
            .err()
            .unwrap()
            .code(),
        ErrorCode::ModelLoad
    );
}

#[test]
fn out_of_range_context_params_are_rejected() {
    let m = common::smollm2();
    for cp in [
        ContextParams {
            n_seq_max: 0,
            ..Default::default()
        },
        ContextParams {
            n_seq_max: 100_000,
            ..Default::default()
        },
        ContextParams {
            n_batch: 0,
            ..Default::default()
        },
        ContextParams {
            n_threads: -3,
            ..Default::default()
        },
        ContextParams {
            n_ctx: 3,
            ..Default::default()
        },
    ] {
        let e = Context::new(m.clone(), &cp).err().expect("must fail");
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{cp:?}");
    }
}

#[test]
fn missing_or_foreign_adapter_is_an_error() {
    let m = common::smollm2();
    let e = LoraAdapter::load(m.clone(), "/nonexistent/adapter.gguf")
        .err()
        .unwrap();
    assert_eq!(e.code(), ErrorCode::AdapterLoad);
    // The base model itself is not an adapter.
    let e = LoraAdapter::load(m, common::smollm2_path()).err().unwrap();
    assert_eq!(e.code(), ErrorCode::AdapterLoad);
}

#[test]
fn model_is_shared_across_threads() {
    let m = common::smollm2();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let m: Arc<Model> = m.clone();
            std::thread::spawn(move || {
                m.tokenize(&format!("thread {i} says hello"), false, false)
                    .unwrap()
                    .len()
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap() > 2);
    }
}
