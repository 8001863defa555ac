//! Devices, placement and memory checks on a machine without a GPU: the device list, the CPU
//! variant, every GPU error that can be provoked without a GPU, the CPU fallback, and a KV
//! cache larger than the host's memory.

mod common;

use fmr::engine::{
    cpu_variant, devices, gpus, Context, ContextParams, DeviceKind, Model, ModelParams, SplitMode,
};
use fmr::ErrorCode;
use std::sync::Arc;

#[test]
fn the_cpu_is_listed_with_its_memory_and_variant() {
    let all = devices();
    let cpu = all
        .iter()
        .find(|d| d.kind == DeviceKind::Cpu)
        .expect("a CPU device");
    assert_eq!(cpu.backend, "CPU");
    assert!(
        cpu.memory_total > 0 && cpu.memory_free <= cpu.memory_total,
        "{cpu:?}"
    );
    for (i, d) in all.iter().enumerate() {
        assert_eq!(d.index, i);
    }
    let v = cpu_variant();
    assert!(!v.library.is_empty(), "{v:?}");
    // This machine has AVX2; whatever variant runs was built for at least that much or is
    // the built-in backend of an x86-64-v3 build.
    assert!(v.features.iter().any(|f| f == "AVX2"), "{v:?}");
}

#[test]
fn gpu_requests_without_a_gpu_are_errors_or_an_explicit_fallback() {
    assert!(gpus().is_empty(), "this test runs where no GPU is lent");
    let path = common::smollm2_path();
    let gpu = ModelParams {
        n_gpu_layers: -1,
        ..Default::default()
    };
    let e = Model::load(&path, &gpu).err().expect("no GPU: an error");
    assert_eq!(e.code(), ErrorCode::Unsupported, "{e}");
    assert!(e.message().contains("libggml-cuda"), "{e}");
    let e = Model::load(
        &path,
        &ModelParams {
            main_gpu: 3,
            split_mode: SplitMode::Layer,
            ..gpu.clone()
        },
    )
    .err()
    .unwrap();
    assert_eq!(e.code(), ErrorCode::Unsupported, "{e}");
    let e = Model::load(
        &path,
        &ModelParams {
            n_gpu_layers: -7,
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");

    let m = Model::load(
        &path,
        &ModelParams {
            cpu_fallback: true,
            ..gpu
        },
    )
    .unwrap();
    assert_eq!(m.gpu_layers(), 0);
    let why = m
        .fallback()
        .expect("the fallback says what it fell back from");
    assert!(
        why.contains("no GPU device") && why.contains("CPU instead"),
        "{why}"
    );
    let cpu_model = Model::load(&path, &ModelParams::default()).unwrap();
    assert!(cpu_model.fallback().is_none());
}

#[test]
fn a_kv_cache_larger_than_memory_is_an_error_naming_both_sizes() {
    let model = common::smollm2();
    let cp = ContextParams {
        n_ctx: 1 << 30,
        n_seq_max: 1,
        ..Default::default()
    };
    let e = Context::new(model.clone(), &cp).err().expect("no room");
    assert_eq!(e.code(), ErrorCode::OutOfMemory, "{e}");
    assert!(
        e.message().contains("MiB on CPU") && e.message().contains("free"),
        "{e}"
    );
    // A context that fits is still created.
    let small = ContextParams {
        n_ctx: 512,
        n_seq_max: 1,
        ..Default::default()
    };
    Context::new(Arc::clone(&model), &small).unwrap();
}
