#!/usr/bin/env bash
# Device checks of CUDA inference (issue 14), on the GPU machine, in one run of about seven
# minutes. Prints PASS/FAIL lines, then the figures; writes everything under $OUT.
#
# Prepare here (no GPU): scripts/device/infer_prep.sh   (fills target/device-infer/)
# Run there:             bash scripts/device/infer_check.sh
#   with target/device-infer carried (device tool: command "bash scripts/device/infer_check.sh",
#   carry ["target/device-infer"], timeout_s 540).
#
# 1. Builds libggml-cuda.so from the carried ggml sources with the machine's CUDA toolkit
#    (scripts/build_cuda_backend.sh, sm_90, 16 jobs) and times it.
# 2. The device list through fmr: the CPU variant module and the GPU with its memory.
# 3. A random Qwen2-1.5B-shape model (SmolLM2's tokenizer, vocab 49152) in Q4_K: group
#    rollouts with every layer on the GPU, prompt 256, 256 generated, B = 1, 8, 16, 64
#    (llama.cpp's own figures on this machine, in another run: 600 / 2477 / 3916 / 8933 tok/s).
# 4. Errors, not crashes: a bad GPU index; a KV cache larger than the GPU's memory
#    (FMR_ERR_OUT_OF_MEMORY naming both sizes); the CPU fallback's note.
# 5. solve with early stopping on the GPU (answers are noise on random weights: it must run).
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN="${FMR_BIN:-target/device-infer}"
OUT="${OUT:-infer-check-out}"
WORK="${WORK:-/tmp/fmr-infer-check}"
mkdir -p "$OUT" "$WORK"
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
fails=0
verdict() { # ok-flag label detail
  if [ "$1" = 1 ]; then echo "PASS $2: $3"; else echo "FAIL $2: $3"; fails=$((fails + 1)); fi
}
for f in bench solve random_gguf llama-src.tar.gz tok-llama.gguf; do
  [ -e "$BIN/$f" ] || { echo "FAIL setup: $BIN/$f missing (run scripts/device/infer_prep.sh, carry target/device-infer)"; exit 1; }
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
export LD_LIBRARY_PATH="$BIN/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

echo "== 1. CUDA module ($(elapsed) s)"
mkdir -p "$WORK/src" && tar -C "$WORK/src" -xzf "$BIN/llama-src.tar.gz"
CARGO_TARGET_DIR="$WORK/target" FMR_LLAMA_SRC="$WORK/src" \
  bash scripts/build_cuda_backend.sh "90" 16 > "$OUT/cuda_build.txt" 2>&1
if [ -f "$WORK/target/cuda-backend/libggml-cuda.so" ]; then
  cp "$WORK/target/cuda-backend/libggml-cuda.so" "$BIN/backends/"
  verdict 1 "cuda module" "$(cat "$WORK/target/cuda-backend/build-time.txt")"
else
  verdict 0 "cuda module" "build failed (tail of $OUT/cuda_build.txt below)"; tail -20 "$OUT/cuda_build.txt"
fi
export FMR_BACKEND_DIR="$BIN/backends"

echo "== 2. devices ($(elapsed) s)"
"$BIN/random_gguf" qwen2-1.5b q4_K "$WORK/qwen2-1.5b.gguf" 3 --tokenizer-from "$BIN/tok-llama.gguf" > /dev/null
"$BIN/solve" --model "$WORK/qwen2-1.5b.gguf" --problem "1+1?" --params '{"n_samples":1,"max_tokens":4}' \
  --device cuda > "$OUT/devices.txt" 2>&1
cat "$OUT/devices.txt" | head -3
grep -q "GPUs: .*MiB free" "$OUT/devices.txt" && grep -q "GPU layers -1\|GPU layers [1-9]" "$OUT/devices.txt"
verdict $([ $? = 0 ] && echo 1 || echo 0) "devices" "a GPU listed and the model's layers on it"

echo "== 3. throughput ($(elapsed) s)"
"$BIN/bench" --model "$WORK/qwen2-1.5b.gguf" --device cuda --threads 16 --npp 256 --ntg 256 \
  --npl 1,8,16,64 --reps 2 --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt"
verdict $([ "${PIPESTATUS[0]}" = 0 ] && echo 1 || echo 0) "bench" "see the S_TG column"

echo "== 4. errors ($(elapsed) s)"
"$BIN/solve" --model "$WORK/qwen2-1.5b.gguf" --problem "1+1?" --device cuda --main-gpu 7 > "$OUT/bad_gpu.txt" 2>&1
verdict $([ $? != 0 ] && grep -qi "gpu" "$OUT/bad_gpu.txt" && echo 1 || echo 0) "bad GPU index" "$(tail -1 "$OUT/bad_gpu.txt")"
"$BIN/solve" --model "$WORK/qwen2-1.5b.gguf" --problem "1+1?" --device cuda --ctx 2000000000 > "$OUT/oom.txt" 2>&1
verdict $([ $? != 0 ] && grep -qi "memory\|MiB\|GiB" "$OUT/oom.txt" && echo 1 || echo 0) "KV larger than memory" "$(tail -1 "$OUT/oom.txt")"
FMR_BACKEND_DIR="$WORK/no-modules" "$BIN/solve" --model "$WORK/qwen2-1.5b.gguf" --problem "1+1?" \
  --params '{"n_samples":1,"max_tokens":4}' --device cuda > "$OUT/no_module.txt" 2>&1
verdict $([ $? != 0 ] && echo 1 || echo 0) "no module folder" "$(tail -1 "$OUT/no_module.txt")"

echo "== 5. solve with early stopping on the GPU ($(elapsed) s)"
"$BIN/solve" --model "$WORK/qwen2-1.5b.gguf" --problem "What is 12*7?" --device cuda \
  --params '{"n_samples":8,"max_tokens":256,"consensus":{"rule":"k_of_n","k":4}}' > "$OUT/solve.txt" 2>&1
verdict $([ $? = 0 ] && grep -q "^summary:" "$OUT/solve.txt" && echo 1 || echo 0) "solve" "$(grep '^summary:' "$OUT/solve.txt")"

echo "== done in $(elapsed) s, $fails failure(s)"
exit $(( fails > 0 ))
