#!/usr/bin/env bash
# Device checks of CUDA inference (issue 14), on the GPU machine. Prints PASS/FAIL lines, then
# the figures; writes everything under $OUT. (The CUDA trainer's checks are train_check.sh.)
#
# Prepare here (no GPU): scripts/device/infer_prep.sh   (fills target/device-infer/)
# Run there:             bash scripts/device/check.sh [all|compare]
#   with target/device-infer carried (device tool: command "bash scripts/device/check.sh",
#   carry ["target/device-infer"], timeout_s 540).
#   all (default, about 6 minutes): sections 1-5 below.
#   compare (about 5 minutes; run it right after `all` while the machine is warm, so that the
#   CUDA module and the model are still there): builds llama-batched-bench with CUDA from the
#   llama.cpp of llama-cpp-python 0.3.36 (the release closest to the vendored tree, as
#   scripts/build_llama_batched_bench.sh does on CPU) and runs it and fmr's bench on the same
#   model and settings, interleaved; writes compare.txt with the ratios.
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
WHAT="${1:-all}"
case "$WHAT" in all|compare) ;; *) echo "usage: $0 [all|compare]"; exit 2 ;; esac
BIN="${FMR_BIN:-target/device-infer}"
OUT="${OUT:-infer-check-out}"
WORK="${WORK:-/tmp/fmr-infer-check}"
. scripts/device/common.sh
for f in bench solve random_gguf llama-src.tar.gz llama-cpp-python-src.tar.gz tok-llama.gguf; do
  [ -e "$BIN/$f" ] || { echo "FAIL setup: $BIN/$f missing (run scripts/device/infer_prep.sh, carry target/device-infer)"; exit 1; }
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
export LD_LIBRARY_PATH="$BIN/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

if [ "$WHAT" = compare ]; then
  echo "== compare: llama-batched-bench with CUDA ($(elapsed) s)"
  [ -f "$BIN/backends/libggml-cuda.so" ] && [ -f "$WORK/qwen2-1.5b.gguf" ] \
    || { echo "FAIL compare: run 'check.sh all' first on this (warm) machine"; exit 1; }
  export FMR_BACKEND_DIR="$BIN/backends"
  lcp="$WORK/lcp"; mkdir -p "$lcp/src" && tar -C "$lcp/src" -xzf "$BIN/llama-cpp-python-src.tar.gz"
  cmake -S "$lcp/src" -B "$lcp/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF > "$OUT/lcp_cmake.txt" 2>&1
  cmake --build "$lcp/build" --target llama-batched-bench -j 16 > "$OUT/lcp_build.txt" 2>&1
  lbb="$lcp/build/bin/llama-batched-bench"
  [ -x "$lbb" ] || { echo "FAIL compare: llama-batched-bench did not build"; tail -20 "$OUT/lcp_build.txt"; exit 1; }
  : > "$OUT/llama.jsonl"; : > "$OUT/ours.txt"
  for r in 1 2; do
    "$lbb" -m "$WORK/qwen2-1.5b.gguf" -ngl 99 -c 40960 -b 2048 -ub 512 -npp 256 -ntg 256 \
      -npl 1,8,16,64 --output-format jsonl 2>/dev/null | grep '^{' >> "$OUT/llama.jsonl"
    "$BIN/bench" --model "$WORK/qwen2-1.5b.gguf" --device cuda --threads 16 --npp 256 --ntg 256 \
      --npl 1,8,16,64 --reps 1 --json "$OUT/ours-$r.json" >> "$OUT/ours.txt" 2>&1
  done
  python3 - "$OUT" <<'PY' | tee "$OUT/compare.txt"
import json, sys, glob
out = sys.argv[1]
llama, ours = {}, {}
for line in open(f"{out}/llama.jsonl"):
    r = json.loads(line)
    llama[r["pl"]] = max(llama.get(r["pl"], 0.0), r["speed_tg"])
for f in glob.glob(f"{out}/ours-*.json"):
    for r in json.load(open(f)):
        ours[r["b"]] = max(ours.get(r["b"], 0.0), r["s_tg"])
fails = 0
for b in sorted(llama):
    ratio = ours.get(b, 0.0) / llama[b] if llama[b] else 0.0
    ok = ratio >= 0.95
    fails += not ok
    print(f"{'PASS' if ok else 'FAIL'} B={b}: fmr {ours.get(b, 0):.0f} tok/s, llama-batched-bench {llama[b]:.0f} tok/s, ratio {ratio:.3f} (target >= 0.95)")
sys.exit(1 if fails else 0)
PY
  [ "${PIPESTATUS[0]}" = 0 ] || fails=$((fails + 1))
else
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

fi

echo "== done in $(elapsed) s, $fails failure(s)"
exit $(( fails > 0 ))
