#!/usr/bin/env bash
# The early-stopping study (issue 15): Gemma-3-270M on the first LIMIT GSM8K test problems,
# N = 16 samples, every rule against the full run with the same seeds.
#
#   full      one run without early stopping; it also takes an answer probe every 32 tokens on a
#             copy of each sample (probes never stop it: agree = 1000) and records every token's
#             confidence, so that replay.py can replay every rule on it
#   rules     real runs of the rules named in RULES (each with --baseline full)
#   budget    the token scheduler: held-out Spearman rho (2-fold by problem) for the policy
#             model's pooled prompt state and for the ONNX MiniLM encoder
#   replay    replay.py over out/full.jsonl: every rule's tokens and maj@16 vs the full run
#
# Usage: experiments/early-stopping/study.sh [STAGES="full rules budget replay"] [LIMIT=200]
#        [RULES="esc probe warmup"]   (outputs in out/, ignored by git)
set -euo pipefail
cd "$(dirname "$0")"
stages="${1:-full rules budget replay}"; limit="${2:-200}"; rules="${RULES:-esc probe warmup}"
threads="${THREADS:-2}"; inflight="${IN_FLIGHT:-32}"
mkdir -p out
cargo build --release --bin eval --bin budget >/dev/null 2>&1
bin="${CARGO_TARGET_DIR:-../../target}/release"
# Fixed before any run (rule defaults live in rust/generate/params.rs).
common='"prompt": {"format": {"kind": "builtin", "name": "gemma"}}, "n_samples": 16, "max_tokens": 256, "sampling": {"seed": 1234}, "answer": {"last_number_fallback": true}'
run() { # name extra-json [baseline]
  local base=()
  [ $# -ge 3 ] && base=(--baseline "$3")
  nice "$bin/eval" --model gemma3 --dataset gsm8k_test --limit "$limit" --threads "$threads" \
    --in-flight "$inflight" --params "{$common$2}" --out "out/$1.jsonl" "${base[@]}" 2>&1 | tee "out/$1.txt"
}
for s in $stages; do
  case "$s" in
    full) run full ', "probe": {"agree": 1000}' ;;
    rules)
      for r in $rules; do
        case "$r" in
          lossless) run lossless ', "consensus": {"rule": "lossless"}' out/full.jsonl ;;
          esc) run esc ', "esc": {}' out/full.jsonl ;;
          probe) run probe ', "probe": {}' out/full.jsonl ;;
          warmup) run warmup ', "confidence_stop": {"threshold": {"source": "warmup"}}' out/full.jsonl ;;
          weighted) run weighted ', "consensus": {"rule": "weighted"}, "vote": {"weight": "lowest_window"}' out/full.jsonl ;;
          *) echo "unknown rule $r" >&2; exit 2 ;;
        esac
      done ;;
    budget)
      for enc in prompt onnx; do
        nice "$bin/budget" cv --from out/full.jsonl --encoder "$enc" --model gemma3 --threads "$threads" \
          --params "{$common}" --predictions "out/budget-$enc.jsonl" 2>&1 | tee "out/budget-$enc.txt"
      done ;;
    replay) python3 replay.py out/full.jsonl --budget out/budget-prompt.jsonl | tee out/replay.txt ;;
    *) echo "unknown stage $s" >&2; exit 2 ;;
  esac
done
