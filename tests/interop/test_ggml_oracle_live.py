"""The ggml oracle under `make interop` is the freshly built libggml-base, and it agrees with qconv.

tests/test_quant_*.py compare every kernel with ggml's C quantizers live, but skip those checks
when libggml-base.so is missing; tools/interop.sh runs them in the same session as this file with
QCONV_LIBGGML pointing at the build and QCONV_INTEROP_NO_SKIPS=1, so a missing oracle fails here
and any skip fails the run. The sweep below adds model-like rows (a 4096-column Gaussian tensor
with outlier columns, as real weights have) for every type qconv writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from ggml_oracle import find_libggml, load_ggml

from qconv.gguf.constants import GGMLType
from qconv.quant import KERNEL_MODULES, dequantize, quantize

pytestmark = pytest.mark.interop

ORACLE = load_ggml()
TYPES = sorted(KERNEL_MODULES)


def test_oracle_is_loaded_from_the_interop_build() -> None:
    path = find_libggml()
    assert path is not None and path.is_file(), "libggml-base.so not built: run make interop"
    assert ORACLE is not None
    explicit = os.environ.get("QCONV_LIBGGML")
    if explicit:
        assert Path(explicit).resolve() == path.resolve()


def model_like_rows(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = (0.02 * rng.standard_normal((16, 4096))).astype(np.float32)
    rows[:, rng.choice(4096, 24, replace=False)] *= 40  # a few outlier input channels
    return rows


@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: GGMLType(t).name)
def test_qconv_quantizes_model_like_rows_exactly_like_ggml(qtype: GGMLType) -> None:
    assert ORACLE is not None, "libggml-base.so not built: run make interop"
    rows = model_like_rows(int(qtype))
    ours = quantize(rows, qtype)
    assert np.array_equal(ours, ORACLE.quantize(qtype, rows))
    if qtype == GGMLType.F32:
        return  # ggml has no to_float for F32 (nothing to decode)
    assert np.array_equal(
        dequantize(ours, qtype, rows.shape[1]).view(np.uint32),
        ORACLE.dequantize(qtype, ours, rows.shape[1]).view(np.uint32),
    )
