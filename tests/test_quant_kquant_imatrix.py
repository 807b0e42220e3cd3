"""The importance-weighted K-quant kernels (Q2_K..Q6_K ``quantize_rows_imatrix``) against ggml.

tests/test_quant_imatrix_goldens.py checks the committed ggml goldens for every weighted type; this
module stresses the K-quant ports live against libggml's ``ggml_quantize_chunk(type, …, imatrix)``
(skipped when the library is not built): inputs spanning several chunks whose boundaries fall
inside rows, one-block rows, zeros and constant blocks, imatrices with zeros and huge dynamic
range, non-finite and subnormal values, and hypothesis-drawn blocks and weights. Without the
oracle, properties pin what the kernels must do whatever ggml's bytes: exact invariance under
power-of-two rescaling of the weights, NaN refusal where ggml's bytes are undefined, and a bounded
reconstruction error.
"""

from __future__ import annotations

import numpy as np
import pytest
from ggml_oracle import load_ggml
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qconv import GGMLType
from qconv.errors import QuantizationError
from qconv.quant import dequantize, q2_k, q4_k, quantize
from qconv.quant.kquant_qx import CHUNK_BLOCKS as QX_CHUNK_BLOCKS

TYPES = [GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K]
# ggml's bytes for NaN depend on undefined float-to-int conversions in these types' searches.
REFUSES_NAN = [GGMLType.Q2_K, GGMLType.Q4_K, GGMLType.Q5_K]
ORACLE = load_ggml()
needs_oracle = pytest.mark.skipif(ORACLE is None, reason="libggml-base.so not built")
type_ids = pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)


def _check_live(qtype: GGMLType, rows: np.ndarray, imatrix: np.ndarray, label: str) -> None:
    assert ORACLE is not None
    expected = ORACLE.quantize(qtype, rows, imatrix)
    got = quantize(rows, qtype, imatrix)
    bad = np.flatnonzero((got != expected).any(axis=1))
    assert not bad.size, f"{label}: rows {bad[:10].tolist()} differ from ggml"


def _imatrices(rng: np.random.Generator, n_cols: int) -> dict[str, np.ndarray]:
    """Weights shaped like llama-imatrix's mean x², and the ones that break naive ports."""
    sparse = rng.exponential(1.0, n_cols)
    sparse[rng.random(n_cols) < 0.8] = 0.0
    zero_block = rng.uniform(0.1, 3.0, n_cols)
    zero_block[:256] = 0.0  # a whole super-block without weight: D and all sums are 0
    with np.errstate(over="ignore"):
        return {
            name: values.astype(np.float32)
            for name, values in {
                "gamma": rng.gamma(0.5, 2.0, n_cols),
                "sparse": sparse,
                "zero_block": zero_block,
                "ones": np.ones(n_cols),
                "decades": 10.0 ** rng.uniform(-20.0, 20.0, n_cols),
                "huge": rng.uniform(0.0, 1.0, n_cols) * 1e30,
                "subnormal": rng.uniform(0.0, 1.0, n_cols) * 1e-40,
            }.items()
        }


def _rows(rng: np.random.Generator, n_cols: int) -> dict[str, np.ndarray]:
    n_rows = 2 * max(QX_CHUNK_BLOCKS, q2_k.CHUNK_BLOCKS, q4_k.CHUNK_BLOCKS) // (n_cols // 256) + 5
    gaussian = rng.standard_normal((n_rows, n_cols)) * rng.lognormal(0.0, 1.0, (n_rows, 1))
    special = rng.standard_normal((12, n_cols))
    special[0] = 0.0
    special[1] = 0.75  # constant blocks: max == min in every group
    special[2] = -2.5
    special[3, ::7] = 0.0
    special[4] *= 10.0 ** rng.uniform(-30.0, 30.0, n_cols)  # huge dynamic range inside blocks
    special[5] = rng.standard_cauchy(n_cols)  # heavy tails
    special[6] *= 1e-13  # scales that underflow fp16 d: the search's own levels are kept
    special[7] *= 1e-40  # subnormal
    special[8, 1::256] = 1e4  # one outlier per block
    special[9] = np.abs(special[9])
    special[10] = rng.integers(-4, 4, n_cols)  # exact ties after scaling
    special[11] = np.round(special[11] * 8) / 8
    with np.errstate(under="ignore"):
        return {"gaussian": gaussian.astype(np.float32), "special": special.astype(np.float32)}


@needs_oracle
@type_ids
def test_weighted_quantize_matches_live_ggml_across_chunks_and_imatrices(qtype: GGMLType) -> None:
    # 768 columns = 3 super-blocks per row, so chunk boundaries fall inside rows.
    # The many-chunk Gaussian set runs with two imatrices, the special rows with every one.
    rng = np.random.default_rng(2024)
    rows = _rows(rng, 768)
    for kind, imatrix in _imatrices(rng, 768).items():
        if kind in ("gamma", "sparse"):
            _check_live(qtype, rows["gaussian"], imatrix, f"gaussian / {kind}")
        _check_live(qtype, rows["special"], imatrix, f"special / {kind}")


@needs_oracle
@type_ids
def test_weighted_quantize_matches_live_ggml_on_one_block_rows(qtype: GGMLType) -> None:
    # One super-block per chunk: every per-super-block sum runs over a single column.
    rng = np.random.default_rng(7)
    rows = _rows(rng, 256)["special"]
    for kind, imatrix in _imatrices(rng, 256).items():
        for i, row in enumerate(rows):
            _check_live(qtype, row[None], imatrix, f"row {i} / {kind}")


def _non_finite_rows(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 256))
    x[0, [3, 100, 200]] = np.inf
    x[1, [5, 6]] = -np.inf
    x[2] = np.sign(x[2]) * 3e38  # x*x overflows: sigma2 and the weights are inf
    x[3] *= 1e7
    x[4, [0, 17, 255]] = np.nan
    x[5, 9] = np.nan
    return x.astype(np.float32)


@needs_oracle
@type_ids
def test_weighted_quantize_matches_live_ggml_on_non_finite_values(qtype: GGMLType) -> None:
    rng = np.random.default_rng(3)
    x = _non_finite_rows(3)
    if qtype in REFUSES_NAN:
        x = x[:4]
    weights = _imatrices(rng, 256)
    weights["with_inf"] = np.where(np.arange(256) % 50 == 3, np.inf, 1.0).astype(np.float32)
    for kind, imatrix in weights.items():
        for i, row in enumerate(x):
            _check_live(qtype, row[None], imatrix, f"row {i} / {kind}")


@needs_oracle
@settings(max_examples=60, deadline=None)
@given(
    qtype=st.sampled_from(TYPES),
    block=arrays(np.float32, 256, elements=st.floats(-1e4, 1e4, width=32)),
    imatrix=arrays(np.float32, 256, elements=st.floats(0, 1e3, width=32)),
)
def test_weighted_quantize_matches_live_ggml_on_arbitrary_blocks(
    qtype: GGMLType, block: np.ndarray, imatrix: np.ndarray
) -> None:
    _check_live(qtype, block.reshape(1, 256), imatrix, "hypothesis block")


@type_ids
@pytest.mark.parametrize("power", [-20, 8])
def test_rescaling_the_imatrix_by_a_power_of_two_keeps_the_bytes(qtype: GGMLType, power: int):
    # Every sum the searches compare is homogeneous in the weights, and scaling by 2**k is exact
    # in float32 away from over/underflow: a port that weighs anything inconsistently fails here.
    rng = np.random.default_rng(power + 100)
    rows = rng.standard_normal((8, 512)).astype(np.float32)
    imatrix = rng.gamma(0.5, 2.0, 512).astype(np.float32) + np.float32(1e-3)
    scaled = imatrix * np.float32(2.0**power)
    np.testing.assert_array_equal(quantize(rows, qtype, scaled), quantize(rows, qtype, imatrix))


@pytest.mark.parametrize("qtype", REFUSES_NAN, ids=lambda t: t.name)
def test_nan_input_is_refused_with_an_imatrix_too(qtype: GGMLType) -> None:
    rows = np.ones((2, 256), dtype=np.float32)
    rows[1, 7] = np.nan
    with pytest.raises(QuantizationError, match="NaN"):
        quantize(rows, qtype, np.ones(256, dtype=np.float32))


# Worst |x - deq| / row amax seen over 400 Gaussian rows (amax 0.01..1000) with weights in
# [0.5, 2]: Q2_K 0.44, Q3_K 0.24, Q4_K 0.11, Q5_K 0.051, Q6_K 0.031. Bounded weights keep every
# element's pull on the fit comparable; a near-zero weight lets an element's error grow freely.
ERROR_BOUND = {
    GGMLType.Q2_K: 0.6,
    GGMLType.Q3_K: 0.35,
    GGMLType.Q4_K: 0.16,
    GGMLType.Q5_K: 0.08,
    GGMLType.Q6_K: 0.05,
}


@settings(max_examples=40, deadline=None)
@given(qtype=st.sampled_from(TYPES), seed=st.integers(0, 2**32 - 1), exponent=st.integers(-2, 3))
def test_weighted_error_is_bounded_by_a_fraction_of_row_amax(
    qtype: GGMLType, seed: int, exponent: int
) -> None:
    rng = np.random.default_rng(seed)
    rows = (rng.standard_normal((2, 256)) * 10.0**exponent).astype(np.float32)
    imatrix = rng.uniform(0.5, 2.0, 256).astype(np.float32)
    decoded = dequantize(quantize(rows, qtype, imatrix), qtype, 256)
    amax = np.abs(rows).max(axis=1, keepdims=True)
    assert (np.abs(rows - decoded) <= ERROR_BOUND[qtype] * amax).all()


@type_ids
def test_zero_rows_with_an_imatrix_give_an_empty_row_array(qtype: GGMLType) -> None:
    weights = np.ones(512, dtype=np.float32)
    row_nbytes = quantize(np.zeros((1, 512), dtype=np.float32), qtype, weights).shape[1]
    data = quantize(np.zeros((0, 512), dtype=np.float32), qtype, weights)
    assert data.shape == (0, row_nbytes)
