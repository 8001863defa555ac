#!/usr/bin/env bash
# The two-stage recipe on SmolLM2-135M-Instruct, end to end on CPU:
#   data → SFT (configs/smollm2_sft.json) → GRPO from the SFT adapter (configs/smollm2_grpo.json)
#   → held-out evaluation of the base model, the SFT adapter and the GRPO adapter.
# The "varied" stages run the same two stages on SFT solutions that carry 0-3 self-verification
# lines (data/recipe-varied, gen_recipe_data.py --verbosity varied; same GRPO and held-out rows).
# Usage: experiments/smollm2-recipe/scripts/run_experiment.sh [stage...]   stages: data sft eval-base eval-sft grpo
#        eval-grpo data-varied sft-varied eval-sft-varied grpo-varied eval-grpo-varied
#        select-varied (default: all, in that order). select-varied picks one of the GRPO run's
#        kept checkpoints (steps 10-45) on data/recipe-varied/validation.jsonl and evaluates it
#        on the held-out set. Results: runs/*.log, runs/eval-*.jsonl,
#        runs/smollm2-*/{metrics.jsonl,metrics.csv,chart.png}.
set -euo pipefail
# Runs in the experiment folder: data/ and runs/ are created here (ignored by git).
cd "$(dirname "$0")/.."
# OpenMP threads keep their default wait policy: PASSIVE makes llama.cpp sleep between the
# many small LoRA products of a decode step (4x slower decoding with an adapter on this machine).
SHARED_DATA="${FMR_SHARED_DATA:-../../../shared/data}"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(data sft eval-base eval-sft grpo eval-grpo
  data-varied sft-varied eval-sft-varied grpo-varied eval-grpo-varied select-varied)
mkdir -p runs
cargo build --release --bin sft --bin grpo --bin eval
bin="${CARGO_TARGET_DIR:-$PWD/../../target}/release"
heldout=data/recipe/heldout.jsonl
for s in "${stages[@]}"; do
  case "$s" in
    data) python3 scripts/gen_recipe_data.py --gsm8k-train "$SHARED_DATA/gsm8k_train.jsonl" --out data/recipe ;;
    sft) "$bin/sft" --config configs/smollm2_sft.json 2>&1 | tee runs/sft.log ;;
    eval-base) "$bin/eval" --config configs/smollm2_grpo.json --file "$heldout" --out runs/eval-base.jsonl 2>&1 | tee runs/eval-base.log ;;
    eval-sft) "$bin/eval" --config configs/smollm2_grpo.json --file "$heldout" --adapter runs/smollm2-sft/adapter.gguf --out runs/eval-sft.jsonl 2>&1 | tee runs/eval-sft.log ;;
    grpo) "$bin/grpo" --config configs/smollm2_grpo.json 2>&1 | tee runs/grpo.log ;;
    eval-grpo) "$bin/eval" --config configs/smollm2_grpo.json --file "$heldout" --adapter runs/smollm2-grpo/adapter.gguf --out runs/eval-grpo.jsonl 2>&1 | tee runs/eval-grpo.log ;;
    data-varied) python3 scripts/gen_recipe_data.py --gsm8k-train "$SHARED_DATA/gsm8k_train.jsonl" --verbosity varied --out data/recipe-varied ;;
    sft-varied) "$bin/sft" --config configs/smollm2_sft_varied.json 2>&1 | tee runs/sft-varied.log ;;
    eval-sft-varied) "$bin/eval" --config configs/smollm2_sft_varied.json --file "$heldout" --adapter runs/smollm2-sft-varied/adapter.gguf --out runs/eval-sft-varied.jsonl 2>&1 | tee runs/eval-sft-varied.log ;;
    grpo-varied) "$bin/grpo" --config configs/smollm2_grpo_varied.json 2>&1 | tee runs/grpo-varied.log ;;
    eval-grpo-varied) "$bin/eval" --config configs/smollm2_grpo_varied.json --file "$heldout" --adapter runs/smollm2-grpo-varied/adapter.gguf --out runs/eval-grpo-varied.jsonl 2>&1 | tee runs/eval-grpo-varied.log ;;
    select-varied)
      ckpts=()
      for n in 10 15 20 25 30 35 40 45; do ckpts+=("runs/smollm2-grpo-varied/checkpoints/step-$n.safetensors"); done
      scripts/select_checkpoint.sh configs/smollm2_grpo_varied.json runs/smollm2-sft-varied/adapter.gguf \
        data/recipe-varied/validation.jsonl "${ckpts[@]}" 2>&1 | tee runs/select.log
      chosen=$(sed -n 's/^chosen: \([^ ]*\) .*/\1/p' runs/select.log)
      "$bin/eval" --config configs/smollm2_grpo_varied.json --file "$heldout" --adapter "$chosen" --out runs/eval-grpo-varied-chosen.jsonl 2>&1 | tee runs/eval-grpo-varied-chosen.log ;;
    *) echo "unknown stage $s" >&2; exit 2 ;;
  esac
done
