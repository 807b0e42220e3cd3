#!/usr/bin/env bash
# Build llama.cpp targets from the vendored sources into the qconv cache (keyed by version) and print
# the build directory. Default target: ggml-base, the library holding ggml-quants.c, used as the
# bit-exactness oracle. ggml-base is compiled without -march flags (no FMA contraction), which is
# what makes it the reference the kernels are compared against.
# Usage: tools/build_ggml.sh [cmake-target ...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$("$here/fetch_llama_cpp.sh")"
build="$(dirname "$root")/build"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(ggml-base)
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
        -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >&2
fi
for target in "${targets[@]}"; do
    cmake --build "$build" --target "$target" -j "$(nproc)" >&2
done
echo "$build"
