#!/usr/bin/env bash
# The early-stopping study (issue 15): N = 16 samples of at most 256 tokens, seed 1234, on one
# of three sets (SET, each with its own out/SET and results/SET folders):
#   gsm8k-base   SmolLM2-135M-Instruct (the default model, no adapter), GSM8K test
#   heldout-sft  the same model with the recipe's SFT adapter (ADAPTER, default
#                ../smollm2-recipe/runs/smollm2-sft/adapter.gguf: made by that experiment's
#                `data sft` stages), the recipe's held-out problems (../smollm2-recipe/data/recipe)
#   gsm8k-sft    the SFT adapter on GSM8K test
# The first LIMIT problems of the set are used. TEMPERATURE=T samples at T instead of the
# default 1.0 (the folders become SET-tT).
#
#   full      one run without early stopping, in SHARDS processes of one thread each (on a
#             shared 2-core machine one thread per process decodes several times faster than
#             two threads that wait on each other). Every token's confidence is recorded, and
#             an answer probe is taken every 32 tokens on a copy of each sample (agree = 1000:
#             probes never stop a sample), so that replay.py can replay every rule on it.
#             The shards are merged into out/SET/full.jsonl (problem index = position in the
#             set). MAX_MINUTES=N stops the shards after N minutes; the problems they finished
#             are kept (eval writes each problem's row when it is done).
#   check     real runs of the rules in RULES on the first CHECK problems (same seeds), each
#             compared with its replay by replay.py --check (tokens and vote per problem).
#   budget    the token scheduler: held-out Spearman rho (2-fold by problem) for the policy
#             model's pooled prompt state and for the ONNX MiniLM encoder, and the held-out
#             budgets (predicted 0.9-quantile x 1.2).
#   replay    replay.py over out/full.jsonl: every rule's tokens and maj@16 against the full run.
#
# Usage: experiments/early-stopping/study.sh [STAGES="full check budget replay"] [LIMIT=100]
#        env: SET=gsm8k-base TEMPERATURE= MAX_MINUTES= SHARDS=2 CHECK=6 RULES="probe warmup esc weighted" ADAPTER=FILE
# Outputs in out/SET/ (ignored by git); results/SET/ holds the committed copies.
set -euo pipefail
cd "$(dirname "$0")"
stages="${1:-full check budget replay}"; limit="${2:-100}"
shards="${SHARDS:-2}"; check="${CHECK:-6}"; rules="${RULES:-probe warmup esc weighted}"
set_name="${SET:-gsm8k-base}"
gsm8k=../../../shared/data/gsm8k_test.jsonl
[ -f "$gsm8k" ] || gsm8k=/work/shared/data/gsm8k_test.jsonl
sft_adapter="${ADAPTER:-../smollm2-recipe/runs/smollm2-sft/adapter.gguf}"
adapter=()
case "$set_name" in
  gsm8k-base) data="$gsm8k" ;;
  heldout-sft) data=../smollm2-recipe/data/recipe/heldout.jsonl; adapter=(--adapter "$sft_adapter") ;;
  gsm8k-sft) data="$gsm8k"; adapter=(--adapter "$sft_adapter") ;;
  *) echo "unknown SET $set_name" >&2; exit 2 ;;
esac
for f in "$data" ${adapter[1]:+"${adapter[1]}"}; do
  [ -f "$f" ] || { echo "study: $f is missing (see the SET list above)" >&2; exit 1; }
done
run_name="$set_name${TEMPERATURE:+-t$TEMPERATURE}"
out="out/$run_name"; res="results/$run_name"
mkdir -p "$out" "$res"
cargo build --release --bin eval --bin budget >/dev/null 2>&1
bin="${CARGO_TARGET_DIR:-../../target}/release"
# Fixed before any run (the rules' defaults live in rust/generate/params.rs).
common='"n_samples": 16, "max_tokens": 256, "sampling": {"seed": 1234'"${TEMPERATURE:+, \"temperature\": $TEMPERATURE}"'}, "answer": {"last_number_fallback": true}'
eval_run() { # name data extra-json [baseline]
  local base=()
  [ $# -ge 4 ] && base=(--baseline "$4")
  nice "$bin/eval" --model smollm2 "${adapter[@]}" --file "$2" --threads 1 --in-flight 16 \
    --params "{$common$3}" --out "$out/$1.jsonl" "${base[@]}" >"$out/$1.txt" 2>&1
}
for s in $stages; do
  case "$s" in
    full)
      per=$(( (limit + shards - 1) / shards ))
      head -n "$limit" "$data" | split -l "$per" -d -a 1 - "$out/data-"
      pids=()
      for ((i = 0; i < shards; i++)); do
        eval_run "full-$i" "$out/data-$i" ', "probe": {"agree": 1000}' &
        pids+=($!)
      done
      if [ -n "${MAX_MINUTES:-}" ]; then
        (sleep "$((MAX_MINUTES * 60))"; pkill -INT -f "eval --model smollm2 .*--out $out/full-" || true) &
        timer=$!
      fi
      wait "${pids[@]}" || true
      [ -n "${timer:-}" ] && kill "$timer" 2>/dev/null || true
      python3 - "$per" "$shards" "$out" <<'EOF'
import json, sys
per, shards, d = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open(f"{d}/full.jsonl", "w") as out:
    for k in range(shards):
        for line in open(f"{d}/full-{k}.jsonl"):
            r = json.loads(line)
            r["index"] += k * per
            out.write(json.dumps(r) + "\n")
EOF
      ;;
    check)
      head -n "$check" "$out/data-0" > "$out/check-data.jsonl"
      for r in $rules; do
        case "$r" in
          probe) x=', "probe": {}'; name="answer probes, every 32, 3 agree (default)" ;;
          warmup) x=', "confidence_stop": {"threshold": {"source": "warmup"}}'; name="confidence gate, warm-up 4, p10 (DeepConf-high)" ;;
          esc) x=', "esc": {}'; name="ESC windows of 4 (default)" ;;
          esc2) x=', "esc": {"window": 2}'; name="ESC windows of 2" ;;
          weighted) x=', "consensus": {"rule": "weighted"}'; name="weighted consensus (count share, tau .95, 4 votes)" ;;
          lossless) x=', "consensus": {"rule": "lossless"}'; name="lossless consensus" ;;
          *) echo "unknown rule $r" >&2; exit 2 ;;
        esac
        eval_run "check-$r" "$out/check-data.jsonl" "$x" "$out/full.jsonl"
        python3 replay.py "$out/full.jsonl" --check "$out/check-$r.jsonl" --rule "$name" | tee "$res/check-$r.txt"
      done ;;
    budget)
      for enc in prompt onnx; do
        for qm in "0.9 1.2" "0.5 1.0"; do
          set -- $qm
          nice "$bin/budget" cv --from "$out/full.jsonl" --encoder "$enc" --model smollm2 --threads 1 \
            --params "{$common}" --quantile "$1" --margin "$2" \
            --predictions "$out/budget-$enc-q$1-m$2.jsonl" 2>&1 | tee "$res/budget-$enc-q$1-m$2.txt"
        done
      done ;;
    replay)
      budgets=()
      for f in "$out"/budget-*.jsonl; do [ -f "$f" ] && budgets+=(--budget "$f"); done
      python3 replay.py "$out/full.jsonl" "${budgets[@]}" --json "$res/replay.json" \
        --markdown "$res/replay.md" | tee "$res/replay.txt" ;;
    *) echo "unknown stage $s" >&2; exit 2 ;;
  esac
done
