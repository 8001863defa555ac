//! C and C++ programs against include/fmr.h and the built cdylib: compiled with warnings as
//! errors, run on the real default model, and run under valgrind for leaks and memory errors.
//! (tests/install.rs builds programs against an installed prefix instead.)

mod common;

use common::c_build::{compile, run, text_of};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

#[test]
fn c_example_runs_two_grpo_steps_with_a_host_reward() {
    let dir = common::TempDir::new("c-grpo");
    let exe = dir.0.join("grpo");
    compile("cc", "c11", "examples/c/grpo.c", &exe, &[]);
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/recipe_grpo.jsonl"
    );
    let out_dir = dir.0.join("run");
    let out = run(Command::new(&exe)
        .arg(common::smollm2_path())
        .arg(data)
        .arg(&out_dir));
    assert!(out.contains("step 1 (host batch)"), "{out}");
    assert!(out.contains("step 2 (sampled batch)"), "{out}");
    // 2 steps x 2 prompts x 4 completions, each scored once by the host reward.
    assert!(out.contains("host reward calls: 16"), "{out}");
    assert!(out.contains("steps taken: 2"), "{out}");
    assert!(out_dir.join("adapter-c.gguf").is_file());
    assert!(out_dir
        .join("adapter-c/adapter_model.safetensors")
        .is_file());
    assert!(out_dir.join("adapter-c/adapter_config.json").is_file());
    let metrics = std::fs::read_to_string(out_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "{metrics}");
}

#[test]
fn c_example_solves_a_problem() {
    let dir = common::TempDir::new("c-solve");
    let exe = dir.0.join("solve");
    compile("cc", "c11", "examples/c/solve.c", &exe, &[]);
    let out = run(Command::new(&exe).arg(common::smollm2_path()));
    assert!(out.contains("vote:"), "{out}");
    assert!(out.contains("sample 3:"), "{out}");
    // Answers are shown in display form, never as canonical keys.
    assert!(!out.contains("q:"), "{out}");
    assert!(
        out.contains(&format!("fmr {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
}

#[test]
fn c_bad_inputs_give_errors_not_crashes() {
    let dir = common::TempDir::new("c-errors");
    let exe = dir.0.join("abi_errors");
    compile("cc", "c11", "tests/c/abi_errors.c", &exe, &[]);
    let out = run(Command::new(&exe).arg(common::smollm2_path()));
    assert!(out.contains("0 failures"), "{out}");
}

#[test]
fn c_trainer_rejects_bad_input_without_side_effects() {
    let dir = common::TempDir::new("c-trainer-errors");
    let exe = dir.0.join("trainer_errors");
    compile("cc", "c11", "tests/c/trainer_errors.c", &exe, &[]);
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/recipe_grpo.jsonl"
    );
    let out = run(Command::new(&exe)
        .arg(common::smollm2_path())
        .arg(data)
        .arg(dir.0.join("run")));
    assert!(out.contains("0 failures"), "{out}");
}

#[test]
fn c_verifier_and_rewards_match_hand_computed_values() {
    let dir = common::TempDir::new("c-verify");
    let exe = dir.0.join("verify_rewards");
    compile("cc", "c11", "tests/c/verify_rewards.c", &exe, &[]);
    let out = run(&mut Command::new(&exe));
    assert!(out.contains("0 failures"), "{out}");
}

#[test]
fn header_compiles_as_cpp() {
    let dir = common::TempDir::new("cpp-header");
    let exe = dir.0.join("header_cpp");
    compile("c++", "c++17", "tests/c/header_cpp.cpp", &exe, &[]);
    run(&mut Command::new(&exe));
}

#[test]
fn c_program_built_against_older_and_newer_structs_works() {
    let dir = common::TempDir::new("c-old-header");
    let exe = dir.0.join("old_header");
    compile("cc", "c11", "tests/c/old_header.c", &exe, &[]);
    let out = run(Command::new(&exe).arg(common::smollm2_path()));
    assert!(out.contains("0 failures"), "{out}");
}

#[test]
fn cpp_layer_without_exceptions_reports_errors_to_its_handler_then_aborts() {
    let dir = common::TempDir::new("cpp-noexcept");
    let exe = dir.0.join("no_exceptions");
    compile(
        "c++",
        "c++17",
        "cpp/tests/no_exceptions_test.cpp",
        &exe,
        &["-fno-exceptions", "-DFMR_NO_EXCEPTIONS"],
    );
    let out = run(Command::new(&exe).arg(common::smollm2_path()));
    assert!(out.contains("no-exceptions layer: 0 failures"), "{out}");
    let failed = Command::new(&exe)
        .arg(common::smollm2_path())
        .arg("fail")
        .output()
        .unwrap();
    let text = text_of(&failed);
    assert_eq!(failed.status.signal(), Some(6), "expected SIGABRT: {text}");
    assert!(
        text.contains("handler: code 4:") && !text.contains("not reached"),
        "{text}"
    );
}

#[test]
fn cpp_layer_works_and_turns_errors_into_exceptions() {
    let dir = common::TempDir::new("cpp-wrapper");
    let exe = dir.0.join("fmr_hpp_test");
    compile("c++", "c++17", "cpp/tests/fmr_hpp_test.cpp", &exe, &[]);
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/recipe_sft.jsonl"
    );
    let out = run(Command::new(&exe)
        .arg(common::smollm2_path())
        .arg(data)
        .arg(dir.0.join("run")));
    assert!(out.contains("C++ layer: 0 failures"), "{out}");
}

#[test]
fn c_example_is_clean_under_valgrind() {
    let dir = common::TempDir::new("c-valgrind");
    let exe = dir.0.join("solve");
    compile("cc", "c11", "examples/c/solve.c", &exe, &[]);
    let has_valgrind = Command::new("valgrind").arg("--version").output().is_ok();
    assert!(
        has_valgrind,
        "valgrind is required (scripts/setup.sh installs it)"
    );
    let out = run(Command::new("valgrind")
        .args([
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--error-exitcode=99",
            "--quiet",
        ])
        .arg(&exe)
        .arg(common::smollm2_path())
        .arg("What is 2 + 2?")
        .arg(r#"{"n_samples": 2, "max_tokens": 6}"#));
    assert!(out.contains("vote:"), "{out}");
}

/// Threads × generators on one shared model with random cancels and deadlines: natively at a
/// higher load, then under valgrind's DRD race detector (helgrind reports the double-checked
/// `std::call_once` fast paths inside ggml and libgcc as races; DRD models them correctly).
#[test]
fn threads_share_a_model_with_random_cancels_and_deadlines_race_free() {
    let dir = common::TempDir::new("c-stress");
    let exe = dir.0.join("stress_threads");
    compile("cc", "c11", "tests/c/stress_threads.c", &exe, &["-pthread"]);
    let model = common::smollm2_path();
    let out = run(Command::new(&exe).arg(&model).args(["4", "25", "11"]));
    assert!(out.contains("100 solves done, 0 failed"), "{out}");
    let out = run(Command::new("valgrind")
        .args(["--tool=drd", "--error-exitcode=99", "--quiet"])
        .arg(&exe)
        .arg(&model)
        .args(["3", "4", "7"]));
    assert!(out.contains("12 solves done, 0 failed"), "{out}");
}

#[test]
fn c_confidence_probes_and_token_scheduler() {
    let dir = common::TempDir::new("c-early");
    let exe = dir.0.join("early_stopping");
    compile("cc", "c11", "tests/c/early_stopping.c", &exe, &[]);
    let out = run(Command::new(&exe).arg(common::smollm2_path()).arg(&dir.0));
    assert!(out.contains("0 failures"), "{out}");
    assert!(dir.0.join("budget/head.safetensors").is_file());
    assert!(dir.0.join("budget/head.json").is_file());
}

/// The device list, the CPU variant and GPU placement errors through the C ABI.
#[test]
fn c_devices_and_gpu_errors() {
    let dir = common::TempDir::new("c-devices");
    let exe = dir.0.join("devices");
    compile("cc", "c11", "tests/c/devices.c", &exe, &[]);
    let out = run(Command::new(&exe).arg(common::smollm2_path()));
    assert!(out.contains("0 failures"), "{out}");
}
