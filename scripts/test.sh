#!/usr/bin/env bash
# Sets up a fresh machine (packages, models) and runs every check: formatting, clippy, the
# header drift check, unit and integration tests (Rust, C, C++, valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh smollm2
cargo fmt --all -- --check
cargo build --release --all-targets
cargo clippy --release --all-targets -- -D warnings
cargo test --release -- --test-threads=2
