#!/usr/bin/env bash
# Sets up a fresh machine (packages, models) and runs every check: formatting, clippy, the
# header drift check, unit and integration tests (Rust, C, C++, valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh smollm2
cargo fmt --all -- --check
cargo build --release --all-targets
cargo clippy --release --all-targets -- -D warnings
# Tests run two at a time; idle OpenMP threads must sleep, not spin, or they starve each other.
export OMP_WAIT_POLICY=PASSIVE
cargo test --release -- --test-threads=2
