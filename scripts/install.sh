#!/usr/bin/env bash
# Installs fmr for C, C++ and Go programs: the shared library with its soname and version links,
# the static library, the headers, a pkg-config file, a CMake package and the licenses.
#
# Usage: scripts/install.sh [--prefix DIR] [--libdir DIR] [--destdir DIR] [--no-build]
#   --prefix   where programs will find fmr (default /usr/local)
#   --libdir   library folder, absolute or relative to the prefix (default lib)
#   --destdir  stage the files under DIR + prefix (for packaging); paths inside the files stay
#              those of --prefix
#   --no-build install what `cargo build --release` already built (in $CARGO_TARGET_DIR or
#              target/) instead of building first
#   --features cargo features for the build (e.g. dynamic-backends)
#
# A dynamic-backends build (libfmr.so needs libllama.so) also installs libllama/libggml next to
# libfmr and the backend modules under lib/fmr/backends/ (the CPU variants, and libggml-cuda.so
# when scripts/build_cuda_backend.sh has built it into $FMR_CUDA_MODULE_DIR or
# target/cuda-backend/), where libfmr looks for them.
#
# Layout (PREFIX/…):
#   lib/libfmr.so.X.Y.Z, lib/libfmr.so.SOVER -> …, lib/libfmr.so -> …   (soname libfmr.so.SOVER)
#   lib/libfmr.a
#   include/fmr/fmr.h, include/fmr/fmr.hpp
#   lib/pkgconfig/fmr.pc                     (Libs.private: what the static library needs)
#   lib/cmake/fmr/fmrConfig.cmake, fmrConfigVersion.cmake   (targets fmr::fmr, fmr::fmr_static)
#   share/doc/fmr/LICENSE-MIT, LICENSE-APACHE, README.md
# SOVER is MAJOR from 1.0 on and 0.MINOR before (each 0.x release may break the ABI); build.rs
# gives the library the same soname. This script plays the part of cargo-c's `cargo cinstall`
# without its long build on a small machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

prefix=/usr/local
libdir=lib
destdir=""
build=1
features=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --libdir) libdir="$2"; shift 2 ;;
    --destdir) destdir="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --features) features="$2"; shift 2 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "install: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$prefix" in /*) ;; *) prefix="$(pwd)/$prefix" ;; esac
prefix="${prefix%/}"
case "$libdir" in
  /*) libdir_abs="$libdir"; libdir_rel="${libdir#"$prefix"/}"
      [ "$libdir_rel" != "$libdir" ] || { echo "install: --libdir must be inside --prefix" >&2; exit 2; } ;;
  *) libdir_rel="$libdir"; libdir_abs="$prefix/$libdir" ;;
esac
includedir_rel=include

# Version from Cargo.toml's [package] section.
version=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\([0-9.]*\)".*/\1/p' "$root/Cargo.toml" | head -1)
[ -n "$version" ] || { echo "install: no version in Cargo.toml" >&2; exit 1; }
IFS=. read -r major minor patch <<<"$version"
if [ "$major" = 0 ]; then sover="0.$minor"; else sover="$major"; fi

if [ "$build" = 1 ]; then
  (cd "$root" && cargo build --release -p fmr --lib ${features:+--features "$features"})
fi
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
built="$target/release"
for f in libfmr.so libfmr.a; do
  [ -f "$built/$f" ] || { echo "install: $built/$f missing: run cargo build --release first" >&2; exit 1; }
done
if command -v readelf >/dev/null; then
  got=$(readelf -d "$built/libfmr.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  [ "$got" = "libfmr.so.$sover" ] || { echo "install: $built/libfmr.so has soname '$got', expected libfmr.so.$sover (rebuild)" >&2; exit 1; }
fi

# What the static library needs besides itself: llama.cpp's C++ runtime and OpenMP, and what
# Rust's standard library uses (as `rustc --print native-static-libs` lists it on Linux).
static_libs=(-lstdc++ -lgomp -lm -lpthread -ldl -lrt -lutil -lgcc_s -lc)
dynamic=0
if command -v readelf >/dev/null && readelf -d "$built/libfmr.so" | grep -q 'NEEDED.*libllama'; then
  dynamic=1
  # libfmr.a then leaves llama.cpp to the shared libraries installed beside it.
  static_libs=(-lllama -lggml -lggml-base "${static_libs[@]}")
fi

dest_lib="$destdir$libdir_abs"
dest_inc="$destdir$prefix/$includedir_rel/fmr"
dest_pc="$dest_lib/pkgconfig"
dest_cmake="$dest_lib/cmake/fmr"
dest_doc="$destdir$prefix/share/doc/fmr"
mkdir -p "$dest_lib" "$dest_inc" "$dest_pc" "$dest_cmake" "$dest_doc"

install -m 755 "$built/libfmr.so" "$dest_lib/libfmr.so.$version"
ln -sfn "libfmr.so.$version" "$dest_lib/libfmr.so.$sover"
ln -sfn "libfmr.so.$sover" "$dest_lib/libfmr.so"
install -m 644 "$built/libfmr.a" "$dest_lib/libfmr.a"
install -m 644 "$root/include/fmr.h" "$root/include/fmr.hpp" "$dest_inc/"
install -m 644 "$root/LICENSE-MIT" "$root/LICENSE-APACHE" "$root/README.md" "$dest_doc/"

cat > "$dest_pc/fmr.pc" <<EOF
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/$libdir_rel
includedir=\${prefix}/$includedir_rel

Name: fmr
Description: Fast-Math-R1 recipe as a library: GGUF inference with length-aware early stopping, math verification and rewards, LoRA training
Version: $version
Libs: -L\${libdir} -lfmr
Libs.private: ${static_libs[*]}
Cflags: -I\${includedir}/fmr
EOF

# The CMake package finds the prefix from its own folder: lib/cmake/fmr -> ../../.. (one more
# level per extra component of the library folder).
IFS=/ read -ra parts <<<"$libdir_rel/cmake/fmr"
up=""
for _ in "${parts[@]}"; do up="$up../"; done
up="${up%/}"
cmake_libs=""
for l in "${static_libs[@]}"; do
  case "$l" in -lpthread|-lc) ;; *) cmake_libs="$cmake_libs;${l#-l}" ;; esac
done
cmake_libs="${cmake_libs#;}"
subst() {
  sed -e "s|@FMR_VERSION@|$version|g" -e "s|@FMR_VERSION_MAJOR@|$major|g" \
      -e "s|@FMR_VERSION_MINOR@|$minor|g" -e "s|@FMR_SOVERSION@|$sover|g" \
      -e "s|@FMR_CMAKEDIR_TO_PREFIX@|$up|g" -e "s|@FMR_LIBDIR_REL@|$libdir_rel|g" \
      -e "s|@FMR_INCLUDEDIR_REL@|$includedir_rel|g" -e "s|@FMR_STATIC_LIBS_CMAKE@|$cmake_libs|g" "$1"
}
subst "$root/cpp/cmake/fmrConfig.cmake.in" > "$dest_cmake/fmrConfig.cmake"
subst "$root/cpp/cmake/fmrConfigVersion.cmake.in" > "$dest_cmake/fmrConfigVersion.cmake"

# A dynamic-backends build: the shared llama.cpp libraries and the backend modules.
if [ "$dynamic" = 1 ]; then
  sys_out=$(ls -td "$built"/build/llama-cpp-sys-2-*/out 2>/dev/null | while read -r d; do
    [ -f "$d/lib/libllama.so" ] && [ -d "$d/backends" ] && { echo "$d"; break; }; done)
  [ -n "$sys_out" ] || { echo "install: libfmr.so needs libllama.so but no dynamic-backends build output was found" >&2; exit 1; }
  cp -P "$sys_out"/lib/libllama.so* "$sys_out"/lib/libggml.so* "$sys_out"/lib/libggml-base.so* "$dest_lib/"
  mkdir -p "$dest_lib/fmr/backends"
  install -m 755 "$sys_out"/backends/libggml-*.so "$dest_lib/fmr/backends/"
  cuda_dir="${FMR_CUDA_MODULE_DIR:-$target/cuda-backend}"
  if [ -f "$cuda_dir/libggml-cuda.so" ]; then
    install -m 755 "$cuda_dir/libggml-cuda.so" "$dest_lib/fmr/backends/"
  fi
  echo "install: backend modules in $dest_lib/fmr/backends: $(cd "$dest_lib/fmr/backends" && echo *)"
fi

echo "install: fmr $version in $destdir$prefix (soname libfmr.so.$sover)"
echo "  C:     cc prog.c \$(PKG_CONFIG_PATH=$libdir_abs/pkgconfig pkg-config --cflags --libs fmr)"
echo "  CMake: -DCMAKE_PREFIX_PATH=$prefix, find_package(fmr $major.$minor REQUIRED), target fmr::fmr"
case "$libdir_abs" in
  /usr/lib|/usr/local/lib|/lib) echo "  run ldconfig once so that programs find libfmr.so.$sover" ;;
  *) echo "  at run time: LD_LIBRARY_PATH=$libdir_abs (or link with -Wl,-rpath,$libdir_abs)" ;;
esac
