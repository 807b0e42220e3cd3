#!/usr/bin/env bash
# `make interop`: build llama.cpp's runtime from the vendored sources (once per version, cached by
# tools/build_ggml.sh), then run the interop tests against it in one pytest session:
#   tests/interop           llama.cpp loads, tokenizes and runs qconv's files; libggml oracle sweep
#   tests/test_quant_*.py   every kernel against ggml's C quantizers live (they skip without it)
# QCONV_INTEROP_NO_SKIPS=1 makes any skipped test fail the run (tests/interop/conftest.py), so a
# missing library can never pass quietly. Only the `llama` target is built (it pulls in ggml,
# ggml-base and ggml-cpu): no tools, examples or server, to keep a cold CI build short.
# Usage: tools/interop.sh [extra pytest args]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
# fetch_llama_cpp.sh downloads the sdist with `python3 -m pip`; the project venv always has pip.
export PATH="$repo/.venv/bin:$PATH"
for tool in cmake c++ make; do
    command -v "$tool" >/dev/null || { echo "interop: $tool is required to build llama.cpp" >&2; exit 1; }
done
start=$(date +%s)
build="$(tools/build_ggml.sh llama ggml-base)"
echo "interop: llama.cpp ready in $build/bin ($(( $(date +%s) - start ))s)" >&2
export QCONV_LLAMA_LIB_DIR="$build/bin"
export QCONV_LIBGGML="$build/bin/libggml-base.so"
export QCONV_INTEROP_NO_SKIPS=1
exec python -m pytest -q -rs -m "interop or not interop" tests/interop tests/test_quant_*.py "$@"
