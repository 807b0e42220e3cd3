"""F32, F16 and BF16 kernels: exact bytes, exact round trips, agreement with gguf-py and ggml."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from ggml_oracle import load_ggml
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qconv.gguf.constants import GGMLType
from qconv.quant import dequantize, quantize
from qconv.quant.float import (
    dequantize_bf16,
    dequantize_f16,
    dequantize_f32,
    quantize_bf16,
    quantize_f16,
    quantize_f32,
)

ORACLE = load_ggml()
needs_oracle = pytest.mark.skipif(ORACLE is None, reason="libggml-base.so not built")
# gguf-py's float16 cast warns on overflow to inf; that is the reference's noise, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:gguf.*")

any_bits = arrays(np.uint32, st.integers(1, 64), elements=st.integers(0, 2**32 - 1))


def _floats(bits: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bits, dtype=np.uint32).view(np.float32).reshape(-1, 1)


def _u16(data: np.ndarray) -> list[int]:
    return np.ascontiguousarray(data).view("<u2").reshape(-1).tolist()


# -- F32 ------------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(bits=any_bits)
def test_f32_stores_every_bit_pattern_unchanged_and_reads_it_back(bits):
    x = _floats(bits)
    data = quantize_f32(x)
    assert data.shape == (x.shape[0], 4)
    assert data.tobytes() == bits.astype("<u4").tobytes()
    assert dequantize_f32(data).view(np.uint32).tolist() == x.view(np.uint32).tolist()


# -- F16 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, 0x3C00),
        (-2.0, 0xC000),
        (65504.0, 0x7BFF),  # fp16 max
        (65519.0, 0x7BFF),  # just below the rounding boundary
        (65520.0, 0x7C00),  # rounds to +inf, as ggml
        (-1e9, 0xFC00),
        (2.0**-24, 0x0001),  # smallest subnormal
        (2.0**-26, 0x0000),  # rounds to zero
        (1.0 + 2.0**-11, 0x3C00),  # tie to even
        (1.0 + 3 * 2.0**-11, 0x3C02),
    ],
)
def test_f16_rounds_to_nearest_even_and_overflows_to_infinity(value, expected):
    data = quantize_f16(np.array([[value]], dtype=np.float32))
    assert _u16(data) == [expected]


@settings(max_examples=50, deadline=None)
@given(values=arrays(np.float16, st.integers(1, 64), elements=st.floats(width=16, allow_nan=False)))
def test_f16_round_trips_every_representable_value_exactly(values):
    x = values.astype(np.float32).reshape(-1, 1)
    data = quantize_f16(x)
    assert data.tobytes() == values.astype("<f2").tobytes()
    back = dequantize_f16(data)
    np.testing.assert_array_equal(back.view(np.uint32), x.view(np.uint32))


@settings(max_examples=50, deadline=None)
@given(rows=arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 40))))
def test_f16_matches_gguf_for_any_float32(rows):
    data = quantize(rows, GGMLType.F16)
    assert data.tobytes() == gguf.quants.quantize(rows, gguf.GGMLQuantizationType.F16).tobytes()
    decoded = dequantize(data, GGMLType.F16, rows.shape[1])
    expected = gguf.quants.dequantize(data, gguf.GGMLQuantizationType.F16)
    np.testing.assert_array_equal(decoded.view(np.uint32), expected.view(np.uint32))


@needs_oracle
def test_f16_matches_ggml_on_non_nan_values():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 100_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = x[~np.isnan(x)].reshape(1, -1)
    np.testing.assert_array_equal(quantize(x, GGMLType.F16), ORACLE.quantize(GGMLType.F16, x))


# -- BF16 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bits", "expected"),
    [
        (0x3F800000, 0x3F80),  # 1.0
        (0x3F808000, 0x3F80),  # tie, even stays
        (0x3F818000, 0x3F82),  # tie, odd rounds up
        (0x3F807FFF, 0x3F80),
        (0x7F7FFFFF, 0x7F80),  # float32 max rounds to +inf
        (0x00000001, 0x0000),  # subnormals are rounded, not flushed
        (0x00008000, 0x0000),
        (0x00018000, 0x0002),
        (0x7FA00000, 0x7FE0),  # NaN: quiet bit forced on
        (0xFF800001, 0xFFC0),  # negative NaN whose payload sits in the low half only
        (0x7F800000, 0x7F80),  # +inf
    ],
)
def test_bf16_rounds_bits_like_ggml_including_nan(bits, expected):
    assert _u16(quantize_bf16(_floats(np.array([bits])))) == [expected]


@settings(max_examples=50, deadline=None)
@given(bits=any_bits)
def test_bf16_matches_gguf_for_every_bit_pattern_including_nan(bits):
    x = _floats(bits)
    expected = gguf.quants.quantize(x, gguf.GGMLQuantizationType.BF16)
    assert quantize_bf16(x).tobytes() == expected.tobytes()


@settings(max_examples=50, deadline=None)
@given(bits=any_bits)
def test_bf16_round_trips_values_with_zero_low_half_exactly(bits):
    x = _floats(bits & np.uint32(0xFFFF0000))
    back = dequantize_bf16(quantize_bf16(x))
    is_nan = np.isnan(x)
    np.testing.assert_array_equal(back.view(np.uint32)[~is_nan], x.view(np.uint32)[~is_nan])
    assert np.isnan(back[is_nan]).all()


def test_bf16_dequantize_matches_gguf_on_random_bytes():
    data = np.random.default_rng(1).integers(0, 256, (10, 64), dtype=np.uint8)
    ours = dequantize(data, GGMLType.BF16, 32)
    expected = gguf.quants.dequantize(data, gguf.GGMLQuantizationType.BF16)
    np.testing.assert_array_equal(ours.view(np.uint32), expected.view(np.uint32))


@needs_oracle
def test_bf16_matches_ggml_on_every_kind_of_bit_pattern():
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2**32, 100_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32).reshape(1, -1)
    np.testing.assert_array_equal(quantize(x, GGMLType.BF16), ORACLE.quantize(GGMLType.BF16, x))


# -- through the registry -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qtype", "width"), [(GGMLType.F32, 4), (GGMLType.F16, 2), (GGMLType.BF16, 2)]
)
def test_float_types_quantize_rows_of_any_length(qtype, width):
    rows = np.arange(3 * 7, dtype=np.float32).reshape(3, 7)
    data = quantize(rows, qtype)
    assert data.shape == (3, 7 * width)
    np.testing.assert_array_equal(dequantize(data, qtype, 7), rows)
