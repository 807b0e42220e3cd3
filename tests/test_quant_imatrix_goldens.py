"""Every importance-weighted quantizer against ggml's own C output, committed and live.

tools/make_quant_goldens.py ran ``ggml_quantize_chunk(type, rows, …, imatrix)`` over the row sets of
tests/quant_cases.py with each importance matrix of make_imatrices() (random positive, with zero
columns and zero blocks, heavy-tailed); qconv must reproduce the bytes exactly. The live checks run
the same comparison against libggml on fresh rows and weights (in `make interop`, and in `make test`
whenever the library is built; they skip otherwise).
"""

from __future__ import annotations

import numpy as np
import pytest
from ggml_oracle import load_ggml
from quant_cases import CASE_NAMES, GOLDEN, IMATRIX_NAMES, golden_imatrices, golden_inputs

from qconv.gguf.constants import QUANT_SIZES, GGMLType
from qconv.quant import quantize

WEIGHTED_TYPES = [
    GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1,
    GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K,
    GGMLType.IQ4_NL, GGMLType.IQ4_XS,
]  # fmt: skip
ORACLE = load_ggml()
needs_oracle = pytest.mark.skipif(ORACLE is None, reason="libggml-base.so not built")
type_ids = pytest.mark.parametrize("qtype", WEIGHTED_TYPES, ids=lambda t: t.name)


def _golden(qtype: GGMLType, case: str, kind: str) -> np.ndarray:
    with np.load(GOLDEN / f"{qtype.name.lower()}.imatrix.npz") as golden:
        return golden[f"{case}.{kind}.bytes"]


@pytest.mark.parametrize("kind", IMATRIX_NAMES)
@pytest.mark.parametrize("case", CASE_NAMES)
@type_ids
def test_weighted_quantize_matches_ggml_golden_bytes(qtype: GGMLType, case: str, kind: str) -> None:
    rows, imatrix = golden_inputs()[case], golden_imatrices()[kind]
    np.testing.assert_array_equal(quantize(rows, qtype, imatrix), _golden(qtype, case, kind))


def test_weighted_goldens_exist_for_every_weighted_type() -> None:
    assert sorted(golden_imatrices()) == sorted(IMATRIX_NAMES)
    assert all((GOLDEN / f"{t.name.lower()}.imatrix.npz").is_file() for t in WEIGHTED_TYPES)


def _live_rows(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """768 columns (three super-blocks), row scales over decades, a zero run, a sparse imatrix."""
    rng = np.random.default_rng(seed)
    rows = (rng.standard_normal((24, 768)) * rng.lognormal(0.0, 1.0, (24, 1))).astype(np.float32)
    rows[3, 100:300] = 0.0
    imatrix = rng.gamma(0.5, 2.0, 768).astype(np.float32)
    imatrix[rng.random(768) < 0.1] = 0.0
    return rows, imatrix


@needs_oracle
@pytest.mark.parametrize("seed", [11, 12])
@type_ids
def test_weighted_quantize_matches_live_ggml(qtype: GGMLType, seed: int) -> None:
    assert ORACLE is not None
    rows, imatrix = _live_rows(seed)
    np.testing.assert_array_equal(
        quantize(rows, qtype, imatrix), ORACLE.quantize(qtype, rows, imatrix)
    )


@needs_oracle
@type_ids
@pytest.mark.parametrize("n_rows", [1, 2])
def test_weighted_quantize_of_one_block_per_row_matches_live_ggml(
    qtype: GGMLType, n_rows: int
) -> None:
    """A single block or row is where NumPy's column sums stop being sequential (one column)."""
    assert ORACLE is not None
    n_cols = QUANT_SIZES[qtype][0]
    rng = np.random.default_rng(n_cols + n_rows)
    rows = rng.standard_t(2, (n_rows, n_cols)).astype(np.float32)
    imatrix = rng.lognormal(0.0, 2.0, n_cols).astype(np.float32)
    np.testing.assert_array_equal(
        quantize(rows, qtype, imatrix), ORACLE.quantize(qtype, rows, imatrix)
    )


def _pathological_imatrix(kind: str, n_cols: int) -> np.ndarray:
    rng = np.random.default_rng(len(kind))
    sparse = rng.random(n_cols) < 0.05
    values = {
        "negative": rng.standard_normal(n_cols),
        "all_zero": np.zeros(n_cols),
        "huge": rng.lognormal(0.0, 1.0, n_cols) * 1e30,
        "subnormal": rng.lognormal(0.0, 1.0, n_cols) * 1e-40,
        "some_inf": np.where(sparse, np.inf, 1.0),
        "some_nan": np.where(sparse, np.nan, 1.0),
    }[kind]
    return values.astype(np.float32)


@needs_oracle
@type_ids
@pytest.mark.parametrize(
    "kind", ["negative", "all_zero", "huge", "subnormal", "some_inf", "some_nan"]
)
def test_weighted_quantize_matches_live_ggml_for_pathological_imatrices(
    qtype: GGMLType, kind: str
) -> None:
    """Weights no llama-imatrix file holds still give ggml's bytes: the kernels mirror C's
    comparisons (``suml2 > 0``, ``D > 0``, ...) rather than assuming positive finite weights."""
    assert ORACLE is not None
    rows = np.random.default_rng(21).standard_normal((8, 512)).astype(np.float32)
    imatrix = _pathological_imatrix(kind, 512)
    np.testing.assert_array_equal(
        quantize(rows, qtype, imatrix), ORACLE.quantize(qtype, rows, imatrix)
    )
