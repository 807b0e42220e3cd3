"""Q6_K and Q3_K (the signed-scale make_qx_quants / make_q3_quants family) against ggml.

Both kernels share qconv/quant/kquant_qx.py, so every test runs for both types. The proofs:
bit-exact bytes and decoded floats against the committed ggml goldens; a live cross-check against
libggml on fresh data when the oracle library is built; our decoder against gguf-py's; and
hypothesis properties (error bound, near-zero blocks).
"""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from ggml_oracle import load_ggml
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from quant_cases import float_bits, make_cases

from qconv.gguf.constants import QUANT_SIZES, GGMLType
from qconv.quant import dequantize, q3_k, quantize
from qconv.quant.kquant_qx import CHUNK_BLOCKS

TYPES = [GGMLType.Q6_K, GGMLType.Q3_K]
# Worst |x - deq| / block amax is ~0.022 (Q6_K) and ~0.28 (Q3_K) on varied data: about one level
# step of the dominant group (clamping at +nmax-1 costs one step). The bounds leave room for that.
ERROR_BOUND = {GGMLType.Q6_K: 1 / 16, GGMLType.Q3_K: 1 / 2}
_TINY = float(np.float32(1e-16))  # below ggml's GROUP_MAX_EPS = 1e-15
ORACLE = load_ggml()
needs_oracle = pytest.mark.skipif(ORACLE is None, reason="libggml-base.so not built")


def _roundtrip(x: np.ndarray, qtype: GGMLType) -> tuple[np.ndarray, np.ndarray]:
    data = quantize(x, qtype)
    return data, dequantize(data, qtype, x.shape[1])


def _fresh_rows(seed: int) -> dict[str, np.ndarray]:
    """New data, more than one chunk of super-blocks, so chunk boundaries are crossed too."""
    rng = np.random.default_rng(seed)
    n_rows = max(CHUNK_BLOCKS, q3_k.CHUNK_BLOCKS) // 4 + 7  # 1024 columns = 4 super-blocks per row
    return {
        **make_cases(seed=seed, n_cols=1024),
        "gaussian_chunks": rng.standard_normal((n_rows, 1024)).astype(np.float32),
        "cauchy": rng.standard_cauchy((16, 1024)).astype(np.float32),
        "small_ints": rng.integers(-4, 4, (16, 1024)).astype(np.float32),
    }


@needs_oracle
@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_quantize_matches_live_ggml_on_fresh_data(qtype):
    for name, rows in _fresh_rows(seed=12345).items():
        expected = ORACLE.quantize(qtype, rows)
        np.testing.assert_array_equal(quantize(rows, qtype), expected, err_msg=name)
        decoded = ORACLE.dequantize(qtype, expected, rows.shape[1])
        got = dequantize(expected, qtype, rows.shape[1])
        np.testing.assert_array_equal(float_bits(got), float_bits(decoded), err_msg=name)


@needs_oracle
@settings(max_examples=60, deadline=None)
@given(
    qtype=st.sampled_from(TYPES),
    block=arrays(np.float32, 256, elements=st.floats(-1e4, 1e4, width=32)),
)
def test_quantize_matches_live_ggml_on_arbitrary_blocks(qtype, block):
    rows = block.reshape(1, 256)
    np.testing.assert_array_equal(quantize(rows, qtype), ORACLE.quantize(qtype, rows))


def _extreme_blocks(seed: int) -> np.ndarray:
    """Blocks where C's defined garbage matters: inf, NaN, overflow-sized and subnormal values."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 256))
    x[0] *= 1e-40  # subnormal: every inverse scale overflows
    x[1] *= 10.0 ** rng.uniform(-40, 38, 256)  # every magnitude in one block
    x[2, [3, 100, 200]] = np.inf
    x[3, [0, 17, 255]] = np.nan
    x[4, [5, 6]] = -np.inf
    x[4] *= 1e-20
    x[5] = np.sign(x[5]) * 3e38  # x*x overflows
    x[6] *= 1e-13  # just above GROUP_MAX_EPS: scales near fp16 zero
    x[7] *= 1e7  # Q3_K's d overflows fp16
    with np.errstate(all="ignore"):
        return x.astype(np.float32)


@needs_oracle
@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_quantize_matches_live_ggml_on_non_finite_and_extreme_blocks(qtype):
    rows = _extreme_blocks(seed=99)
    np.testing.assert_array_equal(quantize(rows, qtype), ORACLE.quantize(qtype, rows))


def _random_finite_blocks(qtype: GGMLType, n_blocks: int, seed: int) -> np.ndarray:
    """Random bytes whose fp16 d is finite (the last two bytes of both block types)."""
    _, type_size = QUANT_SIZES[qtype]
    data = np.random.default_rng(seed).integers(0, 256, (n_blocks, type_size), dtype=np.uint8)
    d = data[:, -2:].copy().view(np.float16)
    data[:, -1] &= np.where(np.isfinite(d[:, 0]), 0xFF, 0xBF).astype(np.uint8)
    return data


@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_dequantize_matches_gguf_py_on_random_bytes(qtype):
    data = _random_finite_blocks(qtype, 64, seed=7)
    expected = gguf.quants.dequantize(data, gguf.GGMLQuantizationType(int(qtype)))
    got = dequantize(data, qtype, 256)
    np.testing.assert_array_equal(float_bits(got), float_bits(expected.reshape(64, 256)))


@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_dequantize_matches_gguf_py_on_quantized_gaussian(qtype):
    rows = np.random.default_rng(3).standard_normal((8, 512)).astype(np.float32)
    data = quantize(rows, qtype)
    expected = gguf.quants.dequantize(data, gguf.GGMLQuantizationType(int(qtype)))
    np.testing.assert_array_equal(float_bits(dequantize(data, qtype, 512)), float_bits(expected))


@settings(max_examples=80, deadline=None)
@given(
    qtype=st.sampled_from(TYPES),
    unit=arrays(np.float32, 256, elements=st.floats(-1, 1, width=32)),
    exponent=st.integers(-2, 3),
)
def test_error_is_bounded_by_a_fraction_of_block_amax(qtype, unit, exponent):
    # Keep amax where fp16 d is normal: far below that, d's own rounding dominates the error.
    x = (unit * np.float32(10.0**exponent)).reshape(1, 256)
    amax = float(np.abs(x).max())
    assume(amax >= 10.0**exponent / 4)
    _, decoded = _roundtrip(x, qtype)
    assert np.abs(x - decoded).max() <= ERROR_BOUND[qtype] * amax


@settings(max_examples=40, deadline=None)
@given(
    qtype=st.sampled_from(TYPES),
    block=arrays(np.float32, 256, elements=st.floats(-_TINY, _TINY, width=32)),
)
def test_blocks_below_group_eps_quantize_to_zero_bytes_and_decode_to_zero(qtype, block):
    data, decoded = _roundtrip(block.reshape(1, 256), qtype)
    assert not data.any()
    assert not decoded.any()


def test_q6_k_dominant_group_gets_scale_minus_128():
    x = np.random.default_rng(5).standard_normal((1, 256)).astype(np.float32)
    x[0, 37] = 9.0  # group 2 holds the largest |x|, hence the largest |scale|
    scales = quantize(x, GGMLType.Q6_K)[0, 192:208].view(np.int8)
    assert scales[2] == -128
    assert (scales[np.arange(16) != 2] > -128).all()


@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_zero_rows_give_zero_bytes(qtype):
    data, decoded = _roundtrip(np.zeros((3, 512), dtype=np.float32), qtype)
    assert data.shape == (3, 2 * QUANT_SIZES[qtype][1])
    assert not data.any()
    assert not decoded.any()
