#!/usr/bin/env bash
# The early-stopping study (issue 15): SmolLM2-135M-Instruct (the default model, no adapter) on
# the first LIMIT GSM8K test problems, N = 16 samples of at most 256 tokens, seed 1234.
#
#   full      one run without early stopping, in SHARDS processes of one thread each (on a
#             shared 2-core machine one thread per process decodes several times faster than
#             two threads that wait on each other). Every token's confidence is recorded, and
#             an answer probe is taken every 32 tokens on a copy of each sample (agree = 1000:
#             probes never stop a sample), so that replay.py can replay every rule on it.
#             The shards are merged into out/full.jsonl (problem index = position in the set).
#   check     real runs of the rules in RULES on the first CHECK problems (same seeds), each
#             compared with its replay by replay.py --check (tokens and vote per problem).
#   budget    the token scheduler: held-out Spearman rho (2-fold by problem) for the policy
#             model's pooled prompt state and for the ONNX MiniLM encoder, and the held-out
#             budgets (predicted 0.9-quantile x 1.2).
#   replay    replay.py over out/full.jsonl: every rule's tokens and maj@16 against the full run.
#
# Usage: experiments/early-stopping/study.sh [STAGES="full check budget replay"] [LIMIT=100]
#        env: SHARDS=2 CHECK=6 RULES="probe warmup esc weighted"
# Outputs in out/ (ignored by git); results/ holds the committed copies.
set -euo pipefail
cd "$(dirname "$0")"
stages="${1:-full check budget replay}"; limit="${2:-100}"
shards="${SHARDS:-2}"; check="${CHECK:-6}"; rules="${RULES:-probe warmup esc weighted}"
mkdir -p out results
cargo build --release --bin eval --bin budget >/dev/null 2>&1
bin="${CARGO_TARGET_DIR:-../../target}/release"
data=../../../shared/data/gsm8k_test.jsonl
[ -f "$data" ] || data=/work/shared/data/gsm8k_test.jsonl
# Fixed before any run (the rules' defaults live in rust/generate/params.rs).
common='"n_samples": 16, "max_tokens": 256, "sampling": {"seed": 1234}, "answer": {"last_number_fallback": true}'
eval_run() { # name data extra-json [baseline]
  local base=()
  [ $# -ge 4 ] && base=(--baseline "$4")
  nice "$bin/eval" --model smollm2 --file "$2" --threads 1 --in-flight 16 \
    --params "{$common$3}" --out "out/$1.jsonl" "${base[@]}" >"out/$1.txt" 2>&1
}
for s in $stages; do
  case "$s" in
    full)
      per=$(( (limit + shards - 1) / shards ))
      head -n "$limit" "$data" | split -l "$per" -d -a 1 - out/data-
      for ((i = 0; i < shards; i++)); do
        eval_run "full-$i" "out/data-$i" ', "probe": {"agree": 1000}' &
      done
      wait
      python3 - "$per" "$shards" <<'EOF'
import json, sys
per, shards = int(sys.argv[1]), int(sys.argv[2])
with open("out/full.jsonl", "w") as out:
    for k in range(shards):
        for line in open(f"out/full-{k}.jsonl"):
            r = json.loads(line)
            r["index"] += k * per
            out.write(json.dumps(r) + "\n")
EOF
      ;;
    check)
      head -n "$check" out/data-0 > out/check-data.jsonl
      for r in $rules; do
        case "$r" in
          probe) x=', "probe": {}'; name="answer probes, every 32, 3 agree (default)" ;;
          warmup) x=', "confidence_stop": {"threshold": {"source": "warmup"}}'; name="confidence gate, warm-up 4, p10 (DeepConf-high)" ;;
          esc) x=', "esc": {}'; name="ESC windows of 4 (default)" ;;
          weighted) x=', "consensus": {"rule": "weighted"}'; name="weighted consensus (count share, tau .95, 4 votes)" ;;
          lossless) x=', "consensus": {"rule": "lossless"}'; name="lossless consensus" ;;
          *) echo "unknown rule $r" >&2; exit 2 ;;
        esac
        eval_run "check-$r" out/check-data.jsonl "$x" out/full.jsonl
        python3 replay.py out/full.jsonl --check "out/check-$r.jsonl" --rule "$name" | tee "out/check-$r-replay.txt"
      done ;;
    budget)
      for enc in prompt onnx; do
        for qm in "0.9 1.2" "0.5 1.0"; do
          set -- $qm
          nice "$bin/budget" cv --from out/full.jsonl --encoder "$enc" --model smollm2 --threads 1 \
            --params "{$common}" --quantile "$1" --margin "$2" \
            --predictions "out/budget-$enc-q$1-m$2.jsonl" 2>&1 | tee "out/budget-$enc-q$1-m$2.txt"
        done
      done ;;
    replay)
      budgets=()
      for f in out/budget-*.jsonl; do [ -f "$f" ] && budgets+=(--budget "$f"); done
      python3 replay.py out/full.jsonl "${budgets[@]}" --json results/replay.json \
        --markdown results/replay.md | tee results/replay.txt ;;
    *) echo "unknown stage $s" >&2; exit 2 ;;
  esac
done
