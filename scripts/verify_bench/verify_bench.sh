#!/usr/bin/env bash
# Benchmarks our verifier against math-verify 0.9 on the same (gold, pred) pairs.
#
# Usage: scripts/verify_bench/verify_bench.sh [EXTRA_PAIRS.jsonl ...]
#   Always runs tests/fixtures/verify_cases.jsonl; each extra JSONL file (fields gold, pred,
#   optional expected) is benchmarked too, e.g. model outputs on GSM8K / MATH-500.
# Env: VENV (default target/verify-bench-venv, outside version control), REPEATS (timing repeats per pair for ours, default 21),
#      VERBOSE (set: print what each verifier read for every disagreement),
#      CARGO_TARGET_DIR (honoured by cargo).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${VENV:-${CARGO_TARGET_DIR:-$root/target}/verify-bench-venv}"
repeats="${REPEATS:-21}"

if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import math_verify" 2>/dev/null; then
  "$venv/bin/pip" install -q "math-verify==0.9.0" "latex2sympy2_extended[antlr4-13-2]==1.11.0"
fi
"$venv/bin/python" -c "import importlib.metadata as m; print('math-verify', m.version('math-verify'))"

(cd "$root" && cargo build --release --quiet --bin verify_bench)
bin="${CARGO_TARGET_DIR:-$root/target}/release/verify_bench"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
files=("$root"/tests/fixtures/verify_cases*.jsonl "$@")
for f in "${files[@]}"; do
  echo "=== $f"
  "$bin" "$f" "$repeats" > "$out/ours.jsonl"
  "$venv/bin/python" "$here/mv_bench.py" "$f" > "$out/mv.jsonl" 2> "$out/mv.err" || {
    echo "math-verify run failed:"; tail -20 "$out/mv.err"; exit 1; }
  "$venv/bin/python" "$here/compare.py" "$f" "$out/ours.jsonl" "$out/mv.jsonl" ${VERBOSE:+-v}
done
