#!/usr/bin/env bash
# Builds ggml's CUDA backend as a run-time module (libggml-cuda.so) from the same vendored
# llama.cpp sources that llama-cpp-sys-2 builds, for a `dynamic-backends` build of fmr: libfmr
# loads it at start-up when it lies beside the CPU modules (scripts/install.sh puts it in
# lib/fmr/backends/), and runs on the CPU alone when it is absent or finds no GPU.
#
# The CUDA toolkit: $CUDA_HOME or /usr/local/cuda when it has bin/nvcc; otherwise the PyPI
# wheels of CUDA 13.0 (nvcc, nvvm, crt, cccl, runtime, cublas; sha256-checked) unpacked under
# target/cuda-toolkit. The wheels carry no libcuda stub, so that build uses ggml's legacy memory
# pool (GGML_CUDA_NO_VMM) instead of the driver's virtual memory; a system toolkit keeps VMM.
# No GPU or driver is needed to build: on a CPU-only machine this is a compile check.
#
# Usage: scripts/build_cuda_backend.sh [ARCHS=80;90] [JOBS=nproc]
#   ARCHS  CMAKE_CUDA_ARCHITECTURES (sm numbers separated by ';')
#   FMR_LLAMA_SRC  the llama.cpp source folder, where cargo is not at hand (the GPU machine)
# Output: ${CARGO_TARGET_DIR:-target}/cuda-backend/libggml-cuda.so, and the build's wall time
# in cuda-backend/build-time.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
archs="${1:-80;90}"
jobs="${2:-$(nproc)}"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
out="$target/cuda-backend"
build="$target/cuda-backend-build"
mkdir -p "$out"

verify() { echo "$2  $1" | sha256sum --check --status; }

# The toolkit.
cuda="${CUDA_HOME:-/usr/local/cuda}"
extra=()
if [ ! -x "$cuda/bin/nvcc" ]; then
  cuda="$target/cuda-toolkit/nvidia/cu13"
  if [ ! -x "$cuda/bin/nvcc" ]; then
    wheels=(
      "nvidia-cuda-nvcc==13.0.88 nvidia_cuda_nvcc-13.0.88-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl 56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03"
      "nvidia-nvvm==13.0.88 nvidia_nvvm-13.0.88-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl c5f41ffeb6466944a026dfa5317d7d85355c119bbec279205d22f1869d1054e0"
      "nvidia-cuda-crt==13.0.88 nvidia_cuda_crt-13.0.88-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl 2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4"
      "nvidia-cuda-cccl==13.0.85 nvidia_cuda_cccl-13.0.85-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649"
      "nvidia-cuda-runtime==13.0.96 nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl 7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548"
      "nvidia-cublas==13.0.2.14 nvidia_cublas-13.0.2.14-py3-none-manylinux_2_27_x86_64.whl 0cf238ffdbe46c00cb9aa98e7bca745c223a5ca5a53e686ac8b3e5a08fe80d6c"
    )
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    for w in "${wheels[@]}"; do
      read -r spec file sha <<<"$w"
      python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$spec"
      verify "$tmp/$file" "$sha" || { echo "cuda: sha256 mismatch for $file" >&2; exit 1; }
      unzip -q -o "$tmp/$file" 'nvidia/*' -d "$target/cuda-toolkit"
      rm -f "$tmp/$file"
    done
    # The layout CMake's FindCUDAToolkit expects: lib64 and unversioned library names.
    ln -sfn lib "$cuda/lib64"
    for l in cudart cublas cublasLt; do ln -sfn "lib$l.so.13" "$cuda/lib/lib$l.so"; done
  fi
  extra+=(-DGGML_CUDA_NO_VMM=ON)
fi
echo "cuda: toolkit $cuda ($("$cuda/bin/nvcc" --version | tail -1))"

# The llama.cpp sources llama-cpp-sys-2 vendors (the version Cargo.lock pins).
src="${FMR_LLAMA_SRC:-}"
[ -n "$src" ] || src=$(cd "$root" && cargo metadata --format-version 1 --locked | python3 -c '
import json, sys, os
m = json.load(sys.stdin)
p = next(p for p in m["packages"] if p["name"] == "llama-cpp-sys-2")
print(os.path.join(os.path.dirname(p["manifest_path"]), "llama.cpp"))')
[ -f "$src/ggml/src/ggml-cuda/CMakeLists.txt" ] || { echo "cuda: no llama.cpp sources at $src (run cargo fetch)" >&2; exit 1; }

# A wrapper project around ggml (ggml's own top level wants files the vendored copy leaves out).
wrap="$target/cuda-backend-src"
mkdir -p "$wrap"
cat > "$wrap/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.18)
project(fmr_cuda_backend C CXX)
add_subdirectory("$src/ggml" ggml)
CMAKE

gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
start=$(date +%s)
cmake -S "$wrap" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_COMPILER="$cuda/bin/nvcc" -DCUDAToolkit_ROOT="$cuda" \
  -DCMAKE_CUDA_ARCHITECTURES="$archs" \
  -DGGML_CUDA=ON -DGGML_BACKEND_DL=ON -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF \
  -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF \
  "${extra[@]}" >"$out/cmake.log"
cmake --build "$build" --target ggml-cuda -j "$jobs"
module=$(find "$build" -name libggml-cuda.so -type f | head -1)
[ -n "$module" ] || { echo "cuda: libggml-cuda.so not produced" >&2; exit 1; }
install -m 755 "$module" "$out/libggml-cuda.so"
secs=$(( $(date +%s) - start ))
echo "archs $archs, $jobs jobs, $(nproc) cores: ${secs} s" > "$out/build-time.txt"
echo "cuda: $out/libggml-cuda.so (archs $archs) built in ${secs} s"
