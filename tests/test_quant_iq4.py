"""IQ4_NL and IQ4_XS beyond the goldens: live libggml checks, the grid lookup, error bounds.

Byte-exactness on the committed goldens is in test_quant_goldens.py (no imatrix) and
test_quant_imatrix_goldens.py (with one). Here: fresh shapes and random bytes against libggml when
it is built; ``best_index`` against a literal transcription of C's ``best_index_int8``; hypothesis
properties that follow from the search (its result is never worse than its own first candidate) and
an error envelope for IQ4_XS; the refusal of non-finite input.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from ggml_oracle import load_ggml
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from quant_cases import float_bits

from qconv.errors import QuantizationError
from qconv.gguf.constants import QUANT_SIZES, GGMLType
from qconv.quant import dequantize, quantize
from qconv.quant.iq4_nl import KVALUES, best_index

TYPES = [GGMLType.IQ4_NL, GGMLType.IQ4_XS]
ORACLE = load_ggml()
needs_oracle = pytest.mark.skipif(ORACLE is None, reason="libggml-base.so not built")
type_ids = pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
GRID = KVALUES.astype(np.float32)


def _c_best_index(x: float) -> int:
    """ggml-quants.c best_index_int8(16, kvalues_iq4nl, x), line by line, in float32."""
    val = [float(v) for v in KVALUES]
    f = np.float32(x)
    if f <= val[0]:
        return 0
    if f >= val[15]:
        return 15
    ml, mu = 0, 15
    while mu - ml > 1:
        mav = (ml + mu) // 2
        if f < val[mav]:
            mu = mav
        else:
            ml = mav
    return mu - 1 if np.float32(f - val[mu - 1]) < np.float32(val[mu] - f) else mu


def test_best_index_matches_c_on_grid_points_midpoints_and_non_finite_values() -> None:
    mids = (GRID[:-1] + GRID[1:]) / 2
    specials = [0.0, -0.0, 1e30, -1e30, math.inf, -math.inf, math.nan, -127.0001, 113.0001]
    probes = np.concatenate([GRID, mids, np.nextafter(mids, 200), np.nextafter(mids, -200)])
    rng = np.random.default_rng(4)
    spread = rng.standard_normal(3000) * rng.lognormal(2, 2, 3000)
    probes = np.concatenate([probes, np.array(specials), np.linspace(-140, 130, 2001), spread])
    probes = probes.astype(np.float32)
    with np.errstate(invalid="ignore"):
        ours = best_index(probes)
    assert [int(i) for i in ours] == [_c_best_index(float(p)) for p in probes]


@needs_oracle
@type_ids
@pytest.mark.parametrize("shape", [(1, 256), (3, 512), (40, 2304)])
def test_quantize_without_imatrix_matches_live_libggml(
    qtype: GGMLType, shape: tuple[int, int]
) -> None:
    assert ORACLE is not None
    rng = np.random.default_rng(shape[0])
    rows = (rng.standard_normal(shape) * rng.lognormal(0, 2, (shape[0], 1))).astype(np.float32)
    rows[0, :40] = 0.0
    np.testing.assert_array_equal(quantize(rows, qtype), ORACLE.quantize(qtype, rows))


@needs_oracle
@type_ids
def test_dequantize_matches_live_libggml_on_random_bytes(qtype: GGMLType) -> None:
    assert ORACLE is not None
    block_size, type_size = QUANT_SIZES[qtype]
    data = np.random.default_rng(3).integers(0, 256, (64, 4 * type_size), dtype=np.uint8)
    with np.errstate(invalid="ignore", over="ignore"):
        decoded = dequantize(data, qtype, 4 * block_size)
    expected = ORACLE.dequantize(qtype, data, 4 * block_size)
    np.testing.assert_array_equal(float_bits(decoded), float_bits(expected))


@type_ids
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused_with_and_without_imatrix(
    qtype: GGMLType, bad: float
) -> None:
    rows = np.ones((2, 256), dtype=np.float32)
    rows[1, 7] = bad
    with pytest.raises(QuantizationError, match="NaN or infinite"):
        quantize(rows, qtype)
    with pytest.raises(QuantizationError, match="NaN or infinite"):
        quantize(rows, qtype, np.ones(256, dtype=np.float32))


# Blocks with a known absolute maximum: unit-range values times a scale, one element forced to
# ±scale. Scales from 0.01 keep d = amax/127 out of fp16's subnormal range, where the stored scale
# loses relative precision and no relative bound can hold; up to 1e4 keeps d below fp16's maximum.
unit_rows = arrays(np.float32, (1, 256), elements=st.floats(-1, 1, width=32))
scales = st.floats(0.01, 1e4)
# Zero or normal importances: with subnormal ones (1e-45) ggml's float32 weighted sums underflow to
# 0 and its search compares zeros, which the float64 bound below cannot model. The bytes for such
# imatrices are still checked against ggml itself in test_quant_imatrix_goldens.py.
imatrices = arrays(
    np.float32,
    256,
    elements=st.just(0.0) | st.floats(2.0**-20, 100, width=32),
)


def _with_amax(unit: np.ndarray, scale: float, where: int, sign: bool) -> np.ndarray:
    x = unit * np.float32(scale)
    x.reshape(-1, 32)[:, where % 32] = np.float32(scale) * (1 if sign else -1)
    return x.astype(np.float32)


def _first_candidate(x: np.ndarray) -> np.ndarray:
    """IQ4_NL's first candidate per block: d0 = max/127 stored as fp16, nearest grid values."""
    blocks = x.reshape(-1, 32)
    first = blocks[np.arange(len(blocks)), np.abs(blocks).argmax(axis=1)]
    d0 = (first / np.float32(127)).astype(np.float32)
    idx = best_index((blocks / d0[:, None]).astype(np.float32))
    return (d0.astype(np.float16).astype(np.float32)[:, None] * GRID[idx]).reshape(x.shape)


@settings(max_examples=200, deadline=None)
@given(unit_rows, scales, st.integers(0, 31), st.booleans(), st.none() | imatrices)
def test_iq4_nl_error_is_never_worse_than_its_first_candidate(
    unit: np.ndarray, scale: float, where: int, sign: bool, imatrix: np.ndarray | None
) -> None:
    """The search keeps a candidate only if its weighted least-squares error is lower, and the final
    nearest-grid indices can only lower it further; the slack (0.1% of the weighted signal) covers
    the fp16 rounding of the two scales."""
    x = _with_amax(unit, scale, where, sign)
    ours = dequantize(quantize(x, GGMLType.IQ4_NL, imatrix), GGMLType.IQ4_NL, 256)
    blocks = x.reshape(-1, 32).astype(np.float64)
    if imatrix is None:
        w = blocks * blocks
    else:
        sigma2 = (blocks * blocks).sum(axis=1, keepdims=True) * 2 / 32
        w = imatrix.reshape(-1, 32) * np.sqrt(sigma2 + blocks * blocks)

    def error(values: np.ndarray) -> np.ndarray:
        return (w * (blocks - values.reshape(-1, 32)) ** 2).sum(axis=1)

    signal = (w * blocks * blocks).sum(axis=1)
    assert (error(ours) <= error(_first_candidate(x)) + 1e-3 * signal).all()


@settings(max_examples=200, deadline=None)
@given(unit_rows, scales, st.integers(0, 255), st.booleans())
def test_iq4_xs_error_stays_within_a_quarter_of_the_super_block_maximum(
    unit: np.ndarray, scale: float, where: int, sign: bool
) -> None:
    """Without an imatrix every element is within amax/4 of its value (measured worst ~0.13·amax
    over 3000 varied super-blocks): the block scales are 6-bit multiples of max_scale/32, and the
    IQ4_NL grid's widest gap is 24 of its 240 span."""
    x = (unit * np.float32(scale)).astype(np.float32)
    x[0, where] = np.float32(scale) * (1 if sign else -1)
    ours = dequantize(quantize(x, GGMLType.IQ4_XS), GGMLType.IQ4_XS, 256)
    assert np.abs(ours - x).max() <= 0.25 * scale


@type_ids
def test_zero_blocks_decode_to_zero(qtype: GGMLType) -> None:
    rows = np.zeros((2, 512), dtype=np.float32)
    assert not dequantize(quantize(rows, qtype), qtype, 512).any()
