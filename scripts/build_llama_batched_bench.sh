#!/usr/bin/env bash
# Builds llama.cpp's own llama-batched-bench from the very llama.cpp tree that llama-cpp-sys-2
# vendors (same commit as our engine), with the same CPU flags as our build (x86-64-v3: AVX2,
# FMA, F16C, BMI2; OpenMP on). Prints the path of the binary on its last line.
#
# Usage: scripts/build_llama_batched_bench.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-target/llama-batched-bench}"
src=$(cargo metadata --format-version 1 2>/dev/null | python3 -c '
import json, sys, os
m = json.load(sys.stdin)
p = next(p for p in m["packages"] if p["name"] == "llama-cpp-sys-2")
print(os.path.join(os.path.dirname(p["manifest_path"]), "llama.cpp"))')
[ -f "$src/tools/batched-bench/batched-bench.cpp" ] || { echo "no tools/batched-bench in $src" >&2; exit 1; }
if [ ! -x "$build/bin/llama-batched-bench" ]; then
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_OPENMP=ON -DGGML_NATIVE=OFF \
    -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_SSE42=ON \
    -DCMAKE_C_FLAGS=-march=x86-64-v3 -DCMAKE_CXX_FLAGS=-march=x86-64-v3 >/dev/null
  cmake --build "$build" --target llama-batched-bench -j "$(nproc)" >/dev/null
fi
echo "llama.cpp source: $src ($(cd "$src" && grep -m1 -o 'LLAMA_BUILD_NUMBER[^)]*' CMakeLists.txt || true))" >&2
echo "$build/bin/llama-batched-bench"
