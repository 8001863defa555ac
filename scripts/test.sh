#!/usr/bin/env bash
# Sets up a fresh machine (packages, models) and runs every check: formatting, clippy, the
# header drift check, unit and integration tests (Rust, C, C++, valgrind, an installed prefix
# used through pkg-config and CMake), and the Go binding (vet, tests, a race-detector test).
set -euo pipefail
cd "$(dirname "$0")/.."
# SmolLM2 for most tests; Gemma-3-270M for the gemma3 trainer parity tests; the MiniLM ONNX
# encoder and ONNX Runtime for the token scheduler's encoder tests (tests/onnx_encoder.rs).
scripts/setup.sh smollm2 gemma3 encoder
cargo fmt --all -- --check
# The recipe's data generator (answers, arithmetic, disjointness, determinism) on a tiny GSM8K
# fixture, in both SFT styles.
for style in plain varied; do
  python3 experiments/smollm2-recipe/scripts/gen_recipe_data.py --gsm8k-train experiments/smollm2-recipe/scripts/gsm8k_train_tiny.jsonl \
    --n-sft-gsm8k 24 --n-sft-gen 64 --n-grpo 100 --n-heldout 50 --verbosity "$style" --self-test
done
# The CUDA trainer (feature cuda-train) needs no CUDA toolkit to build: it is built, linted and
# tested here (its kernels are compiled by NVRTC from the wheel set-up unpacked; the numerical
# checks need a GPU: scripts/device/train_check.sh). The default build is linted too.
CUDA=(--features fmr-tools/cuda-train)
cargo build --release --workspace --all-targets "${CUDA[@]}"
cargo clippy --release --workspace --all-targets "${CUDA[@]}" -- -D warnings
cargo clippy --release --workspace --all-targets -- -D warnings
# Tests run two at a time; idle OpenMP threads must sleep, not spin, or they starve each other.
export OMP_WAIT_POLICY=PASSIVE
cargo test --release --workspace "${CUDA[@]}" -- --test-threads=2

# The Go binding against an install of this build (scripts/install.sh into target/).
[ -x /usr/local/go/bin/go ] && export PATH="$PATH:/usr/local/go/bin"
prefix="${CARGO_TARGET_DIR:-target}/go-prefix"
scripts/install.sh --no-build --prefix "$prefix" >/dev/null
prefix="$(cd "$prefix" && pwd)"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig" LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
(
  cd bindings/go
  test -z "$(gofmt -l .)" || { echo "gofmt: $(gofmt -l .)" >&2; exit 1; }
  go vet ./...
  go test -count=1 ./...
  # Goroutines solving on generators that share one model while another cancels.
  go test -count=1 -race -run 'TestSharedModelConcurrentSolvesAndCancel|TestContextCancelReturnsPartialResult' ./...
)
(
  cd examples/go/solve
  test -z "$(gofmt -l .)" || { echo "gofmt: $(gofmt -l .)" >&2; exit 1; }
  go vet ./...
  out=$(go run . -quiet -params '{"n_samples": 2, "max_tokens": 12}' "What is 2 + 2?")
  grep -q '^vote:' <<<"$out" || { echo "examples/go/solve printed no vote: $out" >&2; exit 1; }
)
