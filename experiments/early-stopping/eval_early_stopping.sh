#!/usr/bin/env bash
# The early-stopping study on the first LIMIT GSM8K test problems with N = 8 samples: a full run
# (no early stopping), then the lossless rule and k-of-8 for k = 3, 4, 5 with the same seeds,
# each compared with the full run (tokens saved, same voted answer, maj@8 accuracy).
#
# Usage: experiments/early-stopping/eval_early_stopping.sh [LIMIT=100] [THREADS=2] [RULES="lossless k3 k4 k5"]
set -euo pipefail
cd "$(dirname "$0")"   # results go to out/ here (ignored by git)
limit="${1:-100}"; threads="${2:-2}"; rules="${3:-lossless k3 k4 k5}"
out=out; mkdir -p "$out"
cargo build --release --bin eval >/dev/null 2>&1
bin="${CARGO_TARGET_DIR:-../../target}/release"
common='"n_samples": 8, "max_tokens": 256, "sampling": {"seed": 1234}, "answer": {"last_number_fallback": true}'
run() { # name consensus-json [baseline]
  local base=()
  [ $# -ge 3 ] && base=(--baseline "$3")
  "$bin/eval" --dataset gsm8k_test --limit "$limit" --threads "$threads" \
    --params "{$common, \"consensus\": $2}" --out "$out/$1.jsonl" "${base[@]}" | tee "$out/$1.txt"
}
[ -s "$out/full.jsonl" ] && [ "$(wc -l < "$out/full.jsonl")" -ge "$limit" ] || run full '{"rule": "off"}'
for r in $rules; do
  case "$r" in
    lossless) run lossless '{"rule": "lossless"}' "$out/full.jsonl" ;;
    k*) run "$r" "{\"rule\": \"k_of_n\", \"k\": ${r#k}}" "$out/full.jsonl" ;;
  esac
done
