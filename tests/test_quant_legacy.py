"""Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 kernels against ggml, gguf-py and their error bounds.

The proofs: bit-exact bytes and decoded floats against the committed ggml goldens; byte equality
with gguf-py's quantizers on random shapes (several chunks long) and on hypothesis-drawn rows; our
decoders against gguf-py's on random bytes; hand-built signed-zero blocks where gguf-py and ggml
disagree (ggml wins); a live cross-check against libggml when the oracle library is built; the
per-block error bounds; and the row-level ``qconv.quant`` entry points.
"""

from __future__ import annotations

import gguf
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
from qconv.quant.q4_0 import CHUNK_BLOCKS

TYPES = [GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1]
ORACLE = load_ggml()
# gguf-py warns when its scales overflow (1/d, fp16 casts); that is the reference's noise, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:gguf.*")
needs_oracle = pytest.mark.skipif(ORACLE is None, reason="libggml-base.so not built")
type_ids = pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)

# Byte offsets of the fp16 fields (d, and m for the "_1" types) inside each block.
FP16_FIELDS = {
    GGMLType.Q8_0: (0,),
    GGMLType.Q4_0: (0,),
    GGMLType.Q5_0: (0,),
    GGMLType.Q4_1: (0, 2),
    GGMLType.Q5_1: (0, 2),
}
# Code range (levels) and whether the type stores a minimum, for the error bounds.
LEVELS = {GGMLType.Q8_0: 255, GGMLType.Q4_0: 16, GGMLType.Q5_0: 32}
LEVELS_WITH_MIN = {GGMLType.Q4_1: 16, GGMLType.Q5_1: 32}

finite_rows = arrays(
    np.float32,
    st.tuples(st.integers(1, 3), st.integers(1, 4).map(lambda n: 32 * n)),
    elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
)


def _gguf_type(qtype: GGMLType) -> gguf.GGMLQuantizationType:
    return gguf.GGMLQuantizationType[qtype.name]


def _fp16(data: np.ndarray, qtype: GGMLType, field: int) -> np.ndarray:
    """The fp16 field ``field`` (0 = d, 1 = m) of every block, widened to float64."""
    blocks = data.reshape(-1, QUANT_SIZES[qtype][1])
    offset = FP16_FIELDS[qtype][field]
    raw = np.ascontiguousarray(blocks[:, offset : offset + 2])
    return raw.view(np.float16).reshape(-1).astype(np.float64)


@pytest.mark.parametrize("shape", [(1, 32), (5, 96), (3, 32 * (CHUNK_BLOCKS + 5))])
@type_ids
def test_quantize_matches_gguf_on_random_shapes_across_chunks(qtype, shape):
    rng = np.random.default_rng(shape[1])
    x = (rng.standard_normal(shape) * rng.uniform(0.01, 100, (shape[0], 1))).astype(np.float32)
    ours = quantize(x, qtype)
    np.testing.assert_array_equal(ours, gguf.quants.quantize(x, _gguf_type(qtype)))
    decoded = dequantize(ours, qtype, shape[1])
    np.testing.assert_array_equal(
        float_bits(decoded), float_bits(gguf.quants.dequantize(ours, _gguf_type(qtype)))
    )


@settings(max_examples=60, deadline=None)
@given(rows=finite_rows, qtype=st.sampled_from(TYPES))
def test_quantize_matches_gguf_on_arbitrary_finite_rows(rows, qtype):
    # gguf-py takes a signed zero's sign from the wrong element (see the signed-zero tests below);
    # everywhere else it is bit-exact with ggml, so compare on rows without -0.0.
    rows = rows + np.float32(0)
    ours = quantize(rows, qtype)
    np.testing.assert_array_equal(ours, gguf.quants.quantize(rows, _gguf_type(qtype)))


@needs_oracle
@settings(max_examples=60, deadline=None)
@given(rows=finite_rows, qtype=st.sampled_from(TYPES))
def test_quantize_matches_libggml_on_arbitrary_finite_rows(rows, qtype):
    np.testing.assert_array_equal(quantize(rows, qtype), ORACLE.quantize(qtype, rows))


@type_ids
def test_dequantize_random_bytes_with_finite_scales_matches_gguf(qtype):
    rng = np.random.default_rng(int(qtype))
    _, type_size = QUANT_SIZES[qtype]
    data = rng.integers(0, 256, (2000, type_size), dtype=np.uint8)
    for offset in FP16_FIELDS[qtype]:
        scales = (rng.standard_normal(2000) * 10.0 ** rng.integers(-8, 4, 2000)).astype(np.float16)
        data[:, offset : offset + 2] = scales.view(np.uint8).reshape(-1, 2)
    data = data.reshape(40, -1)
    n_cols = data.shape[1] // type_size * 32
    ours = dequantize(data, qtype, n_cols)
    np.testing.assert_array_equal(
        float_bits(ours), float_bits(gguf.quants.dequantize(data, _gguf_type(qtype)))
    )


# -- signed zeros: ggml keeps the first element it meets, gguf-py does not -------------------------


def test_q4_0_zero_block_stores_negative_zero_scale_even_if_it_starts_with_minus_zero():
    # C starts from max = +0.0 and only replaces it on a strictly larger |v|: d = +0.0 / -8 = -0.0.
    block = np.zeros((1, 32), dtype=np.float32)
    block[0, 0] = -0.0
    expected = bytes([0x00, 0x80]) + bytes([0x88] * 16)
    assert quantize(block, GGMLType.Q4_0).tobytes() == expected


@pytest.mark.parametrize("first", [0.0, -0.0])
@pytest.mark.parametrize("qtype", [GGMLType.Q4_1, GGMLType.Q5_1], ids=lambda t: t.name)
def test_asymmetric_zero_block_keeps_first_zero_as_minimum_and_positive_zero_scale(qtype, first):
    block = np.array([[first] + [-0.0, 0.0] * 15 + [-0.0]], dtype=np.float32)
    data = quantize(block, qtype).tobytes()
    assert data[:2] == b"\x00\x00"  # d = max - min of one and the same element = +0.0
    assert data[2:4] == np.float16(first).tobytes()
    assert set(data[4:]) == {0}


def test_q8_0_all_zero_block_is_all_zero_bytes():
    block = np.array([[-0.0, 0.0] * 16], dtype=np.float32)
    assert quantize(block, GGMLType.Q8_0).tobytes() == bytes(34)


# -- error bounds ---------------------------------------------------------------------------------

bounded_rows = arrays(
    np.float32,
    st.tuples(st.integers(1, 3), st.integers(1, 4).map(lambda n: 32 * n)),
    elements=st.floats(-6e4, 6e4, width=32),
)


@settings(max_examples=50, deadline=None)
@given(rows=bounded_rows, qtype=st.sampled_from(list(LEVELS)))
def test_symmetric_types_stay_within_half_a_step_plus_scale_rounding(rows, qtype):
    # Q8_0 rounds to nearest (half a step); Q4_0/Q5_0 clamp the far end, which costs one step.
    # Storing d as fp16 adds at most (largest code) * |d - fp16(d)|.
    levels = LEVELS[qtype]
    blocks = rows.reshape(-1, 32).astype(np.float64)
    data = quantize(rows, qtype)
    decoded = dequantize(data, qtype, rows.shape[1]).reshape(-1, 32)
    amax = np.abs(blocks).max(axis=1)
    d = amax / (127 if qtype == GGMLType.Q8_0 else levels // 2)
    step_share = 0.5 if qtype == GGMLType.Q8_0 else 1.0
    d16 = np.abs(_fp16(data, qtype, 0))
    bound = d * step_share + (levels // 2) * np.abs(d - d16) + 1e-5 * amax
    assert (np.abs(blocks - decoded).max(axis=1) <= bound).all()


@settings(max_examples=50, deadline=None)
@given(rows=bounded_rows, qtype=st.sampled_from(list(LEVELS_WITH_MIN)))
def test_types_with_minimum_stay_within_half_a_step_plus_fp16_rounding(rows, qtype):
    top = LEVELS_WITH_MIN[qtype] - 1
    blocks = rows.reshape(-1, 32).astype(np.float64)
    data = quantize(rows, qtype)
    decoded = dequantize(data, qtype, rows.shape[1]).reshape(-1, 32)
    low, high = blocks.min(axis=1), blocks.max(axis=1)
    d = (high - low) / top
    d16, m16 = _fp16(data, qtype, 0), _fp16(data, qtype, 1)
    bound = d / 2 + top * np.abs(d - d16) + np.abs(low - m16) + 1e-5 * (np.abs(low) + high - low)
    assert (np.abs(blocks - decoded).max(axis=1) <= bound).all()


@type_ids
def test_all_zero_blocks_decode_to_zero(qtype):
    rows = np.zeros((2, 64), dtype=np.float32)
    rows[1, ::3] = -0.0
    assert (dequantize(quantize(rows, qtype), qtype, 64) == 0).all()


# -- the row-level entry points -------------------------------------------------------------------


@type_ids
def test_quantize_rows_gives_row_nbytes_per_row_and_decodes_to_the_same_shape(qtype):
    rows = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    data = quantize(rows, qtype)
    assert data.shape == (3, 2 * QUANT_SIZES[qtype][1])
    assert data.dtype == np.uint8
    assert dequantize(data, qtype, 64).shape == (3, 64)


@type_ids
def test_quantize_leaves_its_input_untouched_even_for_a_single_block(qtype):
    rows = np.full((1, 32), -1.0, dtype=np.float32)
    quantize(rows, qtype)
    assert (rows == -1.0).all()


@pytest.mark.parametrize("where", [0, 31])
@type_ids
def test_nan_input_raises_quantization_error(qtype, where):
    rows = np.ones((2, 64), dtype=np.float32)
    rows[1, 32 + where] = np.nan
    with pytest.raises(QuantizationError, match="NaN"):
        quantize(rows, qtype)


@needs_oracle
@type_ids
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_infinite_inputs_give_ggml_bytes_without_warnings(qtype):
    rows = np.random.default_rng(3).standard_normal((3, 64)).astype(np.float32)
    rows[0, 3], rows[1, 40], rows[2, :32] = np.inf, -np.inf, -np.inf
    rows[2, 7] = np.inf
    np.testing.assert_array_equal(quantize(rows, qtype), ORACLE.quantize(qtype, rows))


@type_ids
def test_row_length_not_a_multiple_of_32_raises_quantization_error(qtype):
    with pytest.raises(QuantizationError, match="not a multiple"):
        quantize(np.zeros((2, 48), dtype=np.float32), qtype)


@type_ids
def test_block_kernels_reject_a_wrong_block_shape(qtype):
    import importlib

    module = importlib.import_module(f"qconv.quant.{qtype.name.lower()}")
    with pytest.raises(QuantizationError, match="n_blocks, 32"):
        module.quantize_blocks(np.zeros((2, 16), dtype=np.float32))
    with pytest.raises(QuantizationError, match="n_blocks"):
        module.dequantize_blocks(np.zeros((2, 7), dtype=np.uint8))
