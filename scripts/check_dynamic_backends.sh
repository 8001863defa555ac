#!/usr/bin/env bash
# Checks a dynamic-backends build (not part of the test run: building the 14 CPU variants takes
# about 45 minutes on 2 shared cores): builds it, runs the device tests and the engine tests
# against the modules in the build folder, installs it into a temporary prefix, and runs the C
# device program from that prefix, where libfmr must find its modules under lib/fmr/backends
# with nothing set in the environment.
#
# Usage: scripts/check_dynamic_backends.sh [MODEL_GGUF]   (default: the SmolLM2 model of setup)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
model="${1:-${FMR_MODEL_DIR:-$HOME/.cache/fmr/models}/SmolLM2-135M-Instruct.Q4_1.gguf}"
[ -f "$model" ] || { echo "check: model $model missing (run scripts/setup.sh)" >&2; exit 1; }

cargo build --release -p fmr --lib --features dynamic-backends
cargo test --release -p fmr --features dynamic-backends --test devices --test engine -- --nocapture

prefix="$(mktemp -d)/prefix"
trap 'rm -rf "$(dirname "$prefix")"' EXIT
scripts/install.sh --prefix "$prefix" --no-build
[ -e "$prefix/lib/libllama.so.0" ] || { echo "check: libllama.so.0 not installed" >&2; exit 1; }
ls "$prefix"/lib/fmr/backends/libggml-cpu-*.so >/dev/null
exe="$(dirname "$prefix")/devices"
cc -std=c11 -Wall -Wextra -Werror -o "$exe" tests/c/devices.c \
  $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs fmr) -Wl,-rpath,"$prefix/lib"
out=$(env -u FMR_BACKEND_DIR -u LD_LIBRARY_PATH "$exe" "$model")
echo "$out"
echo "$out" | grep -q "cpu variant: libggml-cpu-" || { echo "check: the installed library did not load a CPU variant module" >&2; exit 1; }
echo "$out" | grep -q "^0 failures" || { echo "check: the C device program failed" >&2; exit 1; }
echo "check: dynamic-backends build passed"
