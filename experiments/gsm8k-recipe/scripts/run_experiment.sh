#!/usr/bin/env bash
# The recipe on real data: Gemma-3-270M, SFT on GSM8K train solutions rewritten to the boxed
# format (calculator annotations removed), GRPO on other GSM8K train problems with the paper's
# rewards and with the new length rewards, a checkpoint chosen on a GSM8K-train validation
# split, evaluation on the first 500 GSM8K test problems (greedy and maj@8) and MATH-500.
#
# Usage: experiments/gsm8k-recipe/scripts/run_experiment.sh [stage...]
#   stages: data sft eval-base eval-sft grpo-paper grpo-shorter-better grpo-laser
#           select-paper select-shorter-better select-laser
#   (default: all, in that order; `pilot` is a separate few-minute smoke run of every stage:
#   4 SFT steps, greedy evaluation of the base model and the SFT adapter on 20 test problems,
#   2 GRPO steps with the ShorterBetter configuration, everything under runs/pilot/). Every training stage resumes from its checkpoint when run
#   again (a killed or time-limited run continues where it stopped), so a long run can be split
#   into several shorter invocations of the same stage. Set MAX_MINUTES to bound one
#   invocation of a training stage (default: no bound).
# Results: runs/*.log, runs/eval-*.jsonl, runs/gemma3-*/{metrics.jsonl,metrics.csv,chart.png}.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED_DATA="${FMR_SHARED_DATA:-../../../shared/data}"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(data sft eval-base eval-sft grpo-paper grpo-shorter-better
  grpo-laser select-paper select-shorter-better select-laser)
mkdir -p runs
cargo build --release --bin sft --bin grpo --bin eval
bin="${CARGO_TARGET_DIR:-$PWD/../../target}/release"
test500=data/gsm8k_test500.jsonl
math500="$SHARED_DATA/math500.jsonl"

# One invocation of a training stage stops after MAX_MINUTES when set (it resumes next time).
limit=()
[ -n "${MAX_MINUTES:-}" ] && limit=(--max-minutes "$MAX_MINUTES")

# eval-NAME ADAPTER|-: greedy on the 500 GSM8K test problems, maj@8 on them, greedy MATH-500.
evaluate() {
  local name="$1" adapter="$2" a=()
  [ "$adapter" != "-" ] && a=(--adapter "$adapter")
  "$bin/eval" --config configs/gemma3_grpo_paper.json --file "$test500" "${a[@]}" \
    --out "runs/eval-$name-greedy.jsonl" 2>&1 | tee "runs/eval-$name-greedy.log"
  "$bin/eval" --model gemma3 --file "$test500" "${a[@]}" \
    --params '{"n_samples": 8, "max_tokens": 320, "sampling": {"temperature": 0.7}, "prompt": {"format": {"kind": "builtin", "name": "gemma"}}}' \
    --out "runs/eval-$name-maj8.jsonl" 2>&1 | tee "runs/eval-$name-maj8.log"
  "$bin/eval" --config configs/gemma3_grpo_paper.json --file "$math500" "${a[@]}" \
    --out "runs/eval-$name-math500.jsonl" 2>&1 | tee "runs/eval-$name-math500.log"
}

# A copy of a configuration with some keys replaced (JSON merged key by key), under runs/pilot/.
pilot_cfg() { # config overrides-json -> path
  local out="runs/pilot/$(basename "$1")"
  python3 - "$1" "$out" "$2" <<'PY'
import json, sys
def merge(a, b):
    for k, v in b.items():
        a[k] = merge(a.get(k, {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return a
c = merge(json.load(open(sys.argv[1])), json.loads(sys.argv[3]))
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
  echo "$out"
}

pilot() {
  mkdir -p runs/pilot
  head -n 20 "$test500" > runs/pilot/test20.jsonl
  local sft grpo
  sft=$(pilot_cfg configs/gemma3_sft.json '{"out_dir": "runs/pilot/sft", "max_steps": 4, "checkpoint_every": 2, "sft": {"eval_every": 2, "max_validation_rows": 16}}')
  "$bin/sft" --config "$sft" --no-chart 2>&1 | tee runs/pilot/sft.log
  "$bin/eval" --config configs/gemma3_grpo_paper.json --file runs/pilot/test20.jsonl \
    --out runs/pilot/eval-base.jsonl 2>&1 | tee runs/pilot/eval-base.log
  "$bin/eval" --config configs/gemma3_grpo_paper.json --file runs/pilot/test20.jsonl \
    --adapter runs/pilot/sft/adapter.gguf --out runs/pilot/eval-sft.jsonl 2>&1 | tee runs/pilot/eval-sft.log
  for r in shorter_better; do
    grpo=$(pilot_cfg "configs/gemma3_grpo_$r.json" "{\"out_dir\": \"runs/pilot/grpo-$r\", \"init_adapter\": \"runs/pilot/sft/adapter\", \"max_steps\": 2, \"checkpoint_every\": 1, \"grpo\": {\"prompts_per_step\": 2, \"generations\": 4}}")
    "$bin/grpo" --config "$grpo" --no-chart 2>&1 | tee "runs/pilot/grpo-$r.log"
  done
}

# Accuracy and mean tokens of one adapter on the validation split (greedy, the run's limits).
val_score() { # config adapter tag -> "accuracy mean_tokens"
  "$bin/eval" --config "$1" --file data/validation.jsonl --adapter "$2" \
    --out "runs/select/$3.jsonl" > "runs/select/$3.log" 2>&1
  python3 -c 'import json,sys; s=json.loads(open(sys.argv[1]).read().split("summary ",1)[1].splitlines()[0]); print(s["accuracy"]["value"], s["mean_tokens"])' "runs/select/$3.log"
}

# select-NAME: the GRPO run's kept checkpoints scored on the validation split (never on test
# data). The rule, fixed before any run: among the checkpoints whose mean tokens are at most
# half the SFT adapter's, the highest validation accuracy (the later one on a tie); when none
# is that short, the highest accuracy of all (said in the log). The choice is then evaluated.
select_ckpt() {
  local name="$1" cfg="configs/gemma3_grpo_$2.json" dir="runs/gemma3-grpo-$1"
  mkdir -p runs/select
  read -r sft_acc sft_tok < <(val_score "$cfg" runs/gemma3-sft/adapter.gguf "sft-$name")
  echo "sft: accuracy $sft_acc, mean tokens $sft_tok" | tee "runs/select-$name.log"
  local best="" best_acc=-1 any="" any_acc=-1
  for ck in "$dir"/checkpoints/step-*.safetensors; do
    [ -f "$ck" ] || continue
    read -r acc tok < <(val_score "$cfg" "$ck" "$name-$(basename "$ck" .safetensors)")
    short=$(python3 -c "import sys; print(int(float(sys.argv[1]) <= 0.5 * float(sys.argv[2])))" "$tok" "$sft_tok")
    echo "$ck: accuracy $acc, mean tokens $tok, at most half of SFT: $short" | tee -a "runs/select-$name.log"
    if python3 -c "import sys; sys.exit(not float(sys.argv[1]) >= float(sys.argv[2]))" "$acc" "$any_acc"; then
      any="$ck" any_acc="$acc"
    fi
    if [ "$short" = 1 ] && python3 -c "import sys; sys.exit(not float(sys.argv[1]) >= float(sys.argv[2]))" "$acc" "$best_acc"; then
      best="$ck" best_acc="$acc"
    fi
  done
  if [ -z "$best" ]; then
    [ -n "$any" ] || { echo "no checkpoint in $dir/checkpoints" >&2; exit 1; }
    echo "no checkpoint is half as long as SFT on validation; taking the most accurate" | tee -a "runs/select-$name.log"
    best="$any" best_acc="$any_acc"
  fi
  echo "chosen: $best (validation accuracy $best_acc)" | tee -a "runs/select-$name.log"
  evaluate "grpo-$name" "$best"
}

for s in "${stages[@]}"; do
  case "$s" in
    data)
      python3 scripts/prepare_data.py --self-test
      python3 scripts/prepare_data.py --gsm8k-train "$SHARED_DATA/gsm8k_train.jsonl" --out data
      head -n 500 "$SHARED_DATA/gsm8k_test.jsonl" > "$test500" ;;
    sft) "$bin/sft" --config configs/gemma3_sft.json "${limit[@]}" 2>&1 | tee -a runs/sft.log ;;
    eval-base) evaluate base - ;;
    eval-sft) evaluate sft runs/gemma3-sft/adapter.gguf ;;
    grpo-paper) "$bin/grpo" --config configs/gemma3_grpo_paper.json "${limit[@]}" 2>&1 | tee -a runs/grpo-paper.log ;;
    grpo-shorter-better) "$bin/grpo" --config configs/gemma3_grpo_shorter_better.json "${limit[@]}" 2>&1 | tee -a runs/grpo-shorter-better.log ;;
    grpo-laser) "$bin/grpo" --config configs/gemma3_grpo_laser.json "${limit[@]}" 2>&1 | tee -a runs/grpo-laser.log ;;
    select-paper) select_ckpt paper paper ;;
    select-shorter-better) select_ckpt shorter-better shorter_better ;;
    select-laser) select_ckpt laser laser ;;
    pilot) pilot ;;
    *) echo "unknown stage $s" >&2; exit 2 ;;
  esac
done
