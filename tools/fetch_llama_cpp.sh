#!/usr/bin/env bash
# Unpack the llama.cpp sources vendored in the llama-cpp-python sdist into the qconv cache and print
# the source root. The sdist comes from the package registry; nothing else is downloaded.
# Usage: tools/fetch_llama_cpp.sh            -> prints e.g. ~/.cache/qconv/llama-cpp-python-0.3.36/src
set -euo pipefail
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
cache="${QCONV_CACHE:-$HOME/.cache/qconv}/llama-cpp-python-$version"
root="$cache/src"
if [ ! -f "$root/ggml/include/ggml.h" ]; then
    mkdir -p "$cache/dl"
    tarball="$cache/dl/llama_cpp_python-$version.tar.gz"
    if [ ! -f "$tarball" ]; then
        python3 -m pip download --quiet --no-deps --no-binary :all: -d "$cache/dl" \
            "llama-cpp-python==$version" >&2
    fi
    rm -rf "$cache/unpack" && mkdir -p "$cache/unpack"
    tar -xzf "$tarball" -C "$cache/unpack"
    rm -rf "$root"
    mv "$cache/unpack/llama_cpp_python-$version/vendor/llama.cpp" "$root"
    rm -rf "$cache/unpack"
fi
echo "$root"
