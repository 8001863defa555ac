#!/usr/bin/env bash
# Prepares the device checks of CUDA inference (scripts/device/check.sh) on a machine
# without a GPU: a dynamic-backends build of the programs (libllama/libggml shared, the CPU
# variants as modules), the llama.cpp ggml sources for building the CUDA module there, and a
# tiny GGUF carrying SmolLM2's tokenizer, gathered in target/device-infer/ (under the 64 MiB a
# call may carry). The dynamic-backends build takes about 45 minutes on 2 cores the first time.
#
# Usage: scripts/device/infer_prep.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET="${CARGO_TARGET_DIR:-target}"
bins=(bench solve random_gguf)
cargo build --release -p fmr-tools --features fmr/dynamic-backends $(printf -- '--bin %s ' "${bins[@]}")
out=target/device-infer
rm -rf "$out" && mkdir -p "$out/lib" "$out/backends"
for b in "${bins[@]}"; do cp "$TARGET/release/$b" "$out/"; done
sys_out=$(ls -td "$TARGET"/release/build/llama-cpp-sys-2-*/out | while read -r d; do
  [ -f "$d/lib/libllama.so" ] && [ -d "$d/backends" ] && { echo "$d"; break; }; done)
[ -n "$sys_out" ] || { echo "prep: no dynamic-backends build output found" >&2; exit 1; }
cp -P "$sys_out"/lib/libllama.so* "$sys_out"/lib/libggml.so* "$sys_out"/lib/libggml-base.so* "$out/lib/"
cp "$sys_out"/backends/libggml-cpu-*.so "$out/backends/"
strip "$out"/bench "$out"/solve "$out"/random_gguf "$out"/lib/*.so.*.* "$out"/backends/*.so 2>/dev/null || true
# The same llama.cpp sources, for scripts/build_cuda_backend.sh there (FMR_LLAMA_SRC).
src=$(cargo metadata --format-version 1 --locked | python3 -c '
import json, sys, os
m = json.load(sys.stdin)
p = next(p for p in m["packages"] if p["name"] == "llama-cpp-sys-2")
print(os.path.join(os.path.dirname(p["manifest_path"]), "llama.cpp"))')
tar -C "$src" -czf "$out/llama-src.tar.gz" ggml
# llama.cpp of llama-cpp-python 0.3.36 (its sdist), for llama-batched-bench with CUDA there
# (`check.sh compare`); trimmed of what that build does not read.
lcp="$TARGET/lcp-sdist"
if [ ! -d "$lcp/llama_cpp_python-0.3.36" ]; then
  mkdir -p "$lcp"
  python3 -m pip download --quiet --no-deps --no-binary :all: -d "$lcp" "llama-cpp-python==0.3.36"
  tar -C "$lcp" -xzf "$lcp/llama_cpp_python-0.3.36.tar.gz"
fi
tar -C "$lcp/llama_cpp_python-0.3.36/vendor/llama.cpp" -czf "$out/llama-cpp-python-src.tar.gz" \
  --exclude=./models --exclude=./docs --exclude=./examples --exclude='./.git*' --exclude=./tests \
  --exclude=./gguf-py --exclude=./media --exclude=./ggml/src/ggml-vulkan --exclude=./ggml/src/ggml-sycl \
  --exclude=./ggml/src/ggml-metal --exclude=./ggml/src/ggml-opencl --exclude=./ggml/src/ggml-cann \
  --exclude=./ggml/src/ggml-webgpu --exclude=./ggml/src/ggml-hexagon .
smol="${FMR_MODEL_DIR:-$HOME/.cache/fmr/models}/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$smol" ] || { echo "prep: $smol missing (run scripts/setup.sh)" >&2; exit 1; }
LD_LIBRARY_PATH="$out/lib" "$out/random_gguf" small-llama q8_0 "$out/tok-llama.gguf" 1 --tied --tokenizer-from "$smol"
du -sh "$out"
echo "prep: carry target/device-infer; run: bash scripts/device/check.sh (then check.sh compare)"
