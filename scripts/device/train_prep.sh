#!/usr/bin/env bash
# Prepares the device checks of the CUDA trainer (scripts/device/train_check.sh) on a machine
# without a GPU: builds the programs with the cuda-train feature (no CUDA toolkit needed) and
# gathers them, with the transformers+PEFT anchor script, in target/device-train/ — the one
# folder to carry to the GPU machine (well under the 64 MiB a call may carry).
#
# Usage: scripts/device/train_prep.sh [ANCHOR.py]   (default ../shared/gpu/peft_grpo_step.py)
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET="${CARGO_TARGET_DIR:-target}"
anchor="${1:-../shared/gpu/peft_grpo_step.py}"
bins=(cuda_check train_bench random_gguf peft_check grpo)
cargo build --release -p fmr-tools --features cuda-train $(printf -- '--bin %s ' "${bins[@]}")
out=target/device-train
rm -rf "$out" && mkdir -p "$out"
for b in "${bins[@]}"; do cp "$TARGET/release/$b" "$out/"; done
strip "$out"/* 2>/dev/null || true
# A small random llama with SmolLM2's tokenizer, so the recipe's GRPO loop (rollouts with
# llama.cpp, rewards, the CUDA update, adapter swap) can run end to end on the GPU machine.
smol="${FMR_MODEL_DIR:-$HOME/.cache/fmr/models}/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -f "$smol" ]; then
  "$out/random_gguf" small-llama q8_0 "$out/tok-llama.gguf" 1 --tied --tokenizer-from "$smol"
else
  echo "prep: $smol missing (scripts/setup.sh): no end-to-end GRPO run"
fi
if [ -f "$anchor" ]; then cp "$anchor" "$out/peft_grpo_step.py"; else echo "prep: anchor $anchor not found (benchmarks will run without it)"; fi
du -sh "$out"
echo "prep: carry target/device-train; run: bash scripts/device/train_check.sh"
