#!/usr/bin/env bash
# Builds llama.cpp's own llama-batched-bench for comparison with our `bench`.
#
# The llama.cpp tree vendored in llama-cpp-sys-2 =0.1.161 ships no tools/batched-bench sources,
# so the tool comes from the llama.cpp tree inside the PyPI sdist of llama-cpp-python 0.3.36, the
# release closest to the vendored tree (their src/ differ in 48 files, the vendored one adds one
# model file: it is slightly newer). It is built with the same CPU flags as our build
# (x86-64-v3: AVX2, FMA, F16C, BMI2; OpenMP on). Prints the binary's path on its last line.
#
# Usage: scripts/build_llama_batched_bench.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
LCP_VERSION=0.3.36
work="${1:-target/llama-batched-bench}"
bin="$work/build/bin/llama-batched-bench"
if [ ! -x "$bin" ]; then
  mkdir -p "$work"
  if [ ! -d "$work/src" ]; then
    python3 -m pip download --quiet --no-deps --no-binary :all: -d "$work" "llama-cpp-python==$LCP_VERSION"
    tar xzf "$work/llama_cpp_python-$LCP_VERSION.tar.gz" -C "$work"
    mv "$work/llama_cpp_python-$LCP_VERSION/vendor/llama.cpp" "$work/src"
    rm -rf "$work/llama_cpp_python-$LCP_VERSION" "$work/llama_cpp_python-$LCP_VERSION.tar.gz"
  fi
  cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_OPENMP=ON -DGGML_NATIVE=OFF \
    -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_SSE42=ON \
    -DCMAKE_C_FLAGS=-march=x86-64-v3 -DCMAKE_CXX_FLAGS=-march=x86-64-v3 >/dev/null
  cmake --build "$work/build" --target llama-batched-bench -j "$(nproc)" >/dev/null
fi
echo "llama-batched-bench from llama-cpp-python $LCP_VERSION's llama.cpp" >&2
echo "$bin"
