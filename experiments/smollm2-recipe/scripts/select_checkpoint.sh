#!/usr/bin/env bash
# Chooses a GRPO checkpoint on the validation split, never on held-out data.
#
# Usage: experiments/smollm2-recipe/scripts/select_checkpoint.sh CONFIG.json SFT_ADAPTER VALIDATION.jsonl CHECKPOINT...
#        (run from experiments/smollm2-recipe; needs the eval program: cargo build --release --bin eval)
#
# Every adapter (the SFT adapter first, then each checkpoint) gets one greedy completion per
# validation problem (eval --config, at most the config's completion tokens). The rule, fixed
# before any of these runs were evaluated: among the checkpoints whose mean completion tokens
# are at most 0.7 x the SFT adapter's, take the one with the highest validation accuracy; on a
# tie, the later one (the order given). Prints one row per adapter and the choice; the rows go
# to runs/select/<name>.jsonl. Exits 1 when no checkpoint is short enough.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 4 ] || { sed -n 2,13p "$0"; exit 2; }
config=$1 sft=$2 validation=$3
shift 3
mkdir -p runs/select
eval_one() { # name adapter -> "accuracy mean_tokens"
  "${CARGO_TARGET_DIR:-../../target}/release/eval" --config "$config" --file "$validation" --adapter "$2" \
    --out "runs/select/$1.jsonl" > "runs/select/$1.log" 2>&1
  python3 -c 'import json,sys; s=json.loads(open(sys.argv[1]).read().split("summary ",1)[1].splitlines()[0]); print(s["accuracy"]["value"], s["mean_tokens"])' "runs/select/$1.log"
}
read -r sft_acc sft_tok < <(eval_one sft "$sft")
echo "sft: accuracy $sft_acc, mean tokens $sft_tok"
best="" best_acc=-1
for ckpt in "$@"; do
  name=$(basename "$ckpt" .safetensors)
  read -r acc tok < <(eval_one "$name" "$ckpt")
  short=$(python3 -c "import sys; print(int(float(sys.argv[1]) <= 0.7 * float(sys.argv[2])))" "$tok" "$sft_tok")
  echo "$name: accuracy $acc, mean tokens $tok, at most 0.7 x SFT: $short"
  if [ "$short" = 1 ] && python3 -c "import sys; sys.exit(not float(sys.argv[1]) >= float(sys.argv[2]))" "$acc" "$best_acc"; then
    best=$ckpt best_acc=$acc
  fi
done
[ -n "$best" ] || { echo "no checkpoint is 30% shorter than the SFT adapter on validation"; exit 1; }
echo "chosen: $best (validation accuracy $best_acc)"
