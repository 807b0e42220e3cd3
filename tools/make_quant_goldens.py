"""Regenerate tests/golden/quant/*.npz: ggml's own C quantizers applied to tests/quant_cases.py.

Builds (or reuses) libggml-base.so from the vendored llama.cpp sources via tools/build_ggml.sh, then
stores for every type the float32 input rows and the bytes ggml_quantize_chunk produces, plus ggml's
dequantization of those bytes (<type>.npz). For the types whose ggml quantizer reads quant weights
it also stores the bytes ggml_quantize_chunk produces with each importance matrix of
make_imatrices() (<type>.imatrix.npz, keys "<case>.<imatrix>.bytes"; the matrices in
imatrices.npz). Run with `make golden`; explain a changed file in the commit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from ggml_oracle import GGML  # noqa: E402
from quant_cases import make_cases, make_imatrices  # noqa: E402

from qconv.gguf.constants import GGMLType  # noqa: E402

TYPES = [
    GGMLType.Q8_0,
    GGMLType.Q4_0,
    GGMLType.Q4_1,
    GGMLType.Q5_0,
    GGMLType.Q5_1,
    GGMLType.Q2_K,
    GGMLType.Q3_K,
    GGMLType.Q4_K,
    GGMLType.Q5_K,
    GGMLType.Q6_K,
    GGMLType.IQ4_NL,
    GGMLType.IQ4_XS,
]
# ggml's quantize_<type> takes the _impl path with these weights; Q8_0 never reads them.
WEIGHTED_TYPES = [t for t in TYPES if t is not GGMLType.Q8_0]


def main() -> None:
    # $QCONV_LIBGGML names a built library (e.g. while a llama.cpp build runs in the cache).
    explicit = os.environ.get("QCONV_LIBGGML")
    if explicit:
        ggml = GGML(Path(explicit))
    else:
        build = subprocess.run(
            [str(REPO / "tools" / "build_ggml.sh")], check=True, capture_output=True, text=True
        ).stdout.strip()
        ggml = GGML(Path(build) / "bin" / "libggml-base.so")
    out_dir = REPO / "tests" / "golden" / "quant"
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = make_cases()
    np.savez_compressed(out_dir / "inputs.npz", **cases)
    for qtype in TYPES:
        arrays: dict[str, np.ndarray] = {}
        for name, rows in cases.items():
            packed = ggml.quantize(qtype, rows)
            arrays[f"{name}.bytes"] = packed
            arrays[f"{name}.dequant"] = ggml.dequantize(qtype, packed, rows.shape[1])
        np.savez_compressed(out_dir / f"{qtype.name.lower()}.npz", **arrays)
        print(f"wrote {qtype.name}", file=sys.stderr)
    imatrices = make_imatrices()
    np.savez_compressed(out_dir / "imatrices.npz", **imatrices)
    for qtype in WEIGHTED_TYPES:
        weighted = {
            f"{name}.{kind}.bytes": ggml.quantize(qtype, rows, imatrix)
            for name, rows in cases.items()
            for kind, imatrix in imatrices.items()
        }
        np.savez_compressed(out_dir / f"{qtype.name.lower()}.imatrix.npz", **weighted)
        print(f"wrote {qtype.name} with imatrices", file=sys.stderr)


if __name__ == "__main__":
    main()
