#!/usr/bin/env bash
# Device checks of the CUDA trainer (issue 16), on the GPU machine, in one run of about eight
# minutes. Prints PASS/FAIL lines, then the figures; writes everything under $OUT.
#
# Prepare here (no GPU): scripts/device/train_prep.sh   (fills target/device-train/)
# Run there:             bash scripts/device/train_check.sh [all|correctness|bench|14b]
#   with target/device-train carried (device tool: command "bash scripts/device/train_check.sh",
#   carry ["target/device-train"], timeout_s 480). `all` (default) runs sections 1-3 (about six
#   minutes); the 14B-shape run (section 4: writing the random 14B model alone takes minutes) is
#   a separate call, `bash scripts/device/train_check.sh 14b`, when device time is left.
#
# 1. cuda_check: CUDA vs CPU on random llama and qwen2 models (F32 and Q4_K weights; f32 and
#    bf16 GPU precision): dequantization bit-exact with ggml for every weight type, per-token
#    log-probs (bf16: mean |Δ| ≤ 2e-3 nats), GRPO LoRA gradients (bf16: relative error ≤ 2e-2),
#    AdamW, and three GRPO updates side by side.
# 2. PEFT: our adapter loaded by Hugging Face PEFT gives our log-probs; an adapter PEFT wrote
#    gives PEFT's log-probs in fmr. Then the recipe's GRPO loop, 3 steps with "device": "cuda"
#    on a small random llama with SmolLM2's tokenizer (rollouts on llama.cpp's CPU backend).
# 3. GRPO update benchmark, Qwen2-1.5B shape (vocab 49152, bf16 weights), G = 8, prompt 256,
#    completions 1024 and 4096, next to the transformers+PEFT anchor in the same run:
#    targets ≤ 0.33 s and ≤ 4.2 GiB (1024), ≤ 1.0 s and ≤ 12 GiB (4096); then the same with a
#    Q4_K base and bf16 block-input checkpoints (figures only).
# 4. Qwen2-14B shape, Q4_K weights, G = 8, completions 16384 (micro-batches of one sequence):
#    fits on the GPU; seconds per update and peak memory.
set -uo pipefail
cd "$(dirname "$0")/../.."
WHAT="${1:-all}"
case "$WHAT" in all|correctness|bench|14b) ;; *) echo "usage: $0 [all|correctness|bench|14b]"; exit 2 ;; esac
want() { [ "$WHAT" = "$1" ] || { [ "$WHAT" = all ] && [ "$1" != 14b ]; }; }
BIN="${FMR_BIN:-target/device-train}"
OUT="${OUT:-train-check-out}"
WORK="${WORK:-/tmp/fmr-train-check}"
PY="${PY:-/opt/torch/.venv/bin/python}"
export LD_LIBRARY_PATH="/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib:/usr/local/cuda-13.0/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
. scripts/device/common.sh
for b in cuda_check train_bench random_gguf peft_check; do
  [ -x "$BIN/$b" ] || { echo "FAIL setup: $BIN/$b missing (run scripts/device/train_prep.sh and carry target/device-train)"; exit 1; }
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

if want correctness; then
echo "== 1. CUDA vs CPU ($(elapsed) s)"
"$BIN/cuda_check" --dir "$WORK/models" --threads 16 2>&1 | tee "$OUT/cuda_check.txt"
[ "${PIPESTATUS[0]}" = 0 ] || fails=$((fails + 1))

echo "== 2. PEFT cross-check ($(elapsed) s)"
"$BIN/random_gguf" small-qwen2 f32 "$WORK/peft-qwen2.gguf" 5 >/dev/null \
  && "$BIN/peft_check" export "$WORK/peft-qwen2.gguf" "$WORK/peft" \
  && "$PY" scripts/device/peft_check.py "$WORK/peft-qwen2.gguf" "$WORK/peft" 2>&1 | tee "$OUT/peft.txt" \
  && "$BIN/peft_check" score "$WORK/peft-qwen2.gguf" "$WORK/peft/theirs" "$WORK/peft/seqs.json" "$WORK/peft/theirs_fmr.json" \
  && "$PY" scripts/device/peft_check.py --compare "$WORK/peft/theirs_logprobs.json" "$WORK/peft/theirs_fmr.json" 2>&1 | tee -a "$OUT/peft.txt"
grep -q '^FAIL' "$OUT/peft.txt" 2>/dev/null && fails=$((fails + 1))
grep -q '^PASS' "$OUT/peft.txt" 2>/dev/null || { echo "FAIL peft: no result"; fails=$((fails + 1)); }

echo "== 2b. GRPO recipe end to end: rollouts, rewards, CUDA update, adapter swap ($(elapsed) s)"
if [ -f "$BIN/tok-llama.gguf" ] && [ -x "$BIN/grpo" ]; then
  cat > "$WORK/e2e.json" <<JSON
{"preset": "small", "model": "$BIN/tok-llama.gguf", "device": "cuda", "out_dir": "$WORK/e2e",
 "resume": false, "threads": 16, "max_steps": 3, "checkpoint_every": 0,
 "data": {"train": "tests/fixtures/recipe_sft.jsonl"},
 "grpo": {"prompts_per_step": 2, "generations": 4, "max_completion_tokens": 32}}
JSON
  rm -rf "$WORK/e2e"
  "$BIN/grpo" --config "$WORK/e2e.json" --no-chart 2>&1 | tail -5 | tee "$OUT/e2e.txt"
  rows=$(wc -l < "$WORK/e2e/metrics.jsonl" 2>/dev/null || echo 0)
  verdict "$([ "$rows" = 3 ] && echo 1 || echo 0)" "GRPO recipe, 3 steps with \"device\": \"cuda\"" "$rows metrics rows"
else
  verdict 0 "GRPO recipe end to end" "tok-llama.gguf or grpo not carried"
fi

fi

if want bench; then
echo "== 3. GRPO update, Qwen2-1.5B shape ($(elapsed) s)"
"$BIN/random_gguf" qwen2-1.5b bf16 "$WORK/q15.gguf" 1 --vocab 49152 | tee "$OUT/bench.txt"
anchor="$BIN/peft_grpo_step.py"
for C in 1024 4096; do
  "$BIN/train_bench" --device cuda --model "$WORK/q15.gguf" --seqs 8 --prompt 256 --completion "$C" --steps 3 2>&1 | tee -a "$OUT/bench.txt"
  line=$(grep "RESULT train_bench" "$OUT/bench.txt" | grep "C=$C " | tail -1)
  s=$(sed -n 's/.*s_per_update=\([0-9.]*\).*/\1/p' <<<"$line")
  g=$(sed -n 's/.*peak_gib=\([0-9.]*\).*/\1/p' <<<"$line")
  if [ "$C" = 1024 ]; then ts=0.33; tg=4.2; else ts=1.0; tg=12; fi
  if [ -n "$s" ]; then
    ok=$(awk -v s="$s" -v g="$g" -v ts="$ts" -v tg="$tg" 'BEGIN{print (s<=ts && g<=tg)?1:0}')
    verdict "$ok" "GRPO update C=$C" "$s s (target ≤ $ts), peak $g GiB (target ≤ $tg)"
  else
    verdict 0 "GRPO update C=$C" "no result"
  fi
  if [ -f "$anchor" ]; then
    "$PY" "$anchor" "$C" 2>&1 | grep -v Warning | tee -a "$OUT/bench.txt"
  else
    echo "anchor script not carried: no transformers+PEFT figure"
  fi
done
# The same shape with the recipe's kind of base (Q4_K) and bf16 block-input checkpoints: the
# memory-lean setting (bf16 weights alone take 2.7 GiB of the 4.2 GiB target at this shape).
"$BIN/random_gguf" qwen2-1.5b q4_K "$WORK/q15k.gguf" 1 --vocab 49152 | tee -a "$OUT/bench.txt"
for C in 1024 4096; do
  "$BIN/train_bench" --device cuda --model "$WORK/q15k.gguf" --seqs 8 --prompt 256 --completion "$C" \
    --steps 3 --ckpt-bf16 2>&1 | grep RESULT | tee -a "$OUT/bench.txt"
done

fi

if want 14b; then
  echo "== 4. Qwen2-14B shape, Q4_K, 16384-token completions ($(elapsed) s)"
  "$BIN/random_gguf" qwen2-14b q4_K "$WORK/q14.gguf" 1 | tee "$OUT/bench14b.txt"
  "$BIN/train_bench" --device cuda --model "$WORK/q14.gguf" --seqs 8 --prompt 256 --completion 16384 \
    --micro-batch 1 --steps 1 --warmup 0 2>&1 | tee -a "$OUT/bench14b.txt"
  line=$(grep "RESULT train_bench" "$OUT/bench14b.txt" | tail -1)
  if [ -n "$line" ]; then verdict 1 "14B shape fits" "$line"; else verdict 0 "14B shape fits" "no result"; fi
fi

echo "== figures"
grep -h "RESULT\|peft grpo step" "$OUT"/bench*.txt 2>/dev/null
echo "train_check: $fails failing group(s), $(elapsed) s"
[ "$fails" = 0 ]
