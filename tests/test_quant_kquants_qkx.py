"""Q4_K, Q5_K and Q2_K (the make_qkx2_quants scale+min family) against ggml.

The three kernels share qconv/quant/kquant.py, so every test runs for each type. The proofs:
bit-exact bytes and decoded floats against the committed ggml goldens; a live cross-check against
libggml on fresh data when the oracle library is built; our decoder against gguf-py's; hypothesis
properties (per-block error bound from d and dmin, zero blocks); and an accuracy ordering.
"""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from ggml_oracle import load_ggml
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from quant_cases import float_bits, golden_inputs, make_cases

from qconv.errors import QuantizationError
from qconv.gguf.constants import QUANT_SIZES, GGMLType
from qconv.quant import dequantize, kquant, kquant_k4, q2_k, q4_k, q5_k, quantize

MODULES = {GGMLType.Q4_K: q4_k, GGMLType.Q5_K: q5_k, GGMLType.Q2_K: q2_k}
TYPES = list(MODULES)
IDS = [t.name for t in TYPES]
# Where d and dmin sit in each block, the largest integer sub-scale they multiply, the top level.
HEAD = {GGMLType.Q4_K: (0, 63, 15), GGMLType.Q5_K: (0, 63, 31), GGMLType.Q2_K: (80, 15, 3)}
FP16_STEP = 2.0**-24  # fp16's smallest subnormal: d and dmin of tiny blocks round to it or to 0
ORACLE = load_ggml()
needs_oracle = pytest.mark.skipif(ORACLE is None, reason="libggml-base.so not built")


def _head(data: np.ndarray, qtype: GGMLType) -> tuple[np.ndarray, np.ndarray]:
    """Per block (d, dmin) as float32, read from the raw bytes."""
    offset = HEAD[qtype][0]
    words = np.ascontiguousarray(data[:, offset : offset + 4]).view("<f2")
    return words[:, 0].astype(np.float32), words[:, 1].astype(np.float32)


def _fresh_rows(seed: int) -> dict[str, np.ndarray]:
    """New data, including more super-blocks than one search chunk and extreme block scales."""
    rng = np.random.default_rng(seed)
    n_rows = (
        max(m.CHUNK_BLOCKS for m in MODULES.values()) // 4 + 5
    )  # 1024 columns = 4 super-blocks per row
    scales = 10.0 ** rng.uniform(-44, 30, (24, 1))  # subnormal through fp16-overflowing d
    return {
        **make_cases(seed=seed, n_cols=1024),
        "gaussian_chunks": rng.standard_normal((n_rows, 1024)).astype(np.float32),
        "cauchy": rng.standard_cauchy((16, 1024)).astype(np.float32),
        "extreme_scales": (rng.standard_normal((24, 1024)) * scales).astype(np.float32),
        "sparse": (rng.standard_normal((16, 1024)) * (rng.random((16, 1024)) < 0.05)).astype(
            np.float32
        ),
        "quarter_steps": rng.integers(-8, 9, (16, 1024)).astype(np.float32) / 4,
    }


@needs_oracle
@pytest.mark.parametrize("qtype", TYPES, ids=IDS)
def test_quantize_matches_live_libggml_on_fresh_data(qtype):
    for name, rows in _fresh_rows(seed=11).items():
        expected = ORACLE.quantize(qtype, rows)
        got = quantize(rows, qtype)
        bad = np.flatnonzero((got != expected).any(axis=1))
        assert bad.size == 0, f"{name}: rows {bad[:5]} differ from ggml"


@needs_oracle
@pytest.mark.parametrize("qtype", TYPES, ids=IDS)
def test_dequantize_matches_live_libggml_on_random_bytes(qtype):
    data = _random_blocks(qtype, np.random.default_rng(5), n_blocks=64).reshape(8, -1)
    expected = ORACLE.dequantize(qtype, data, 8 * 256)
    np.testing.assert_array_equal(
        float_bits(dequantize(data, qtype, 8 * 256)), float_bits(expected)
    )


def _random_blocks(qtype: GGMLType, rng: np.random.Generator, n_blocks: int) -> np.ndarray:
    """Random block bytes whose fp16 d and dmin are finite (gguf-py's decoder needs that)."""
    data = rng.integers(0, 256, (n_blocks, QUANT_SIZES[qtype][1]), dtype=np.uint8)
    offset = HEAD[qtype][0]
    head = rng.normal(0, 1, (n_blocks, 2)).astype(np.float16)
    data[:, offset : offset + 4] = head.view(np.uint8)
    return data


@pytest.mark.parametrize("qtype", TYPES, ids=IDS)
def test_dequantize_equals_gguf_py_on_random_and_quantized_bytes(qtype):
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((4, 512)).astype(np.float32)
    for raw in (_random_blocks(qtype, rng, 32), quantize(rows, qtype)):
        data = raw.reshape(-1, QUANT_SIZES[qtype][1])
        expected = gguf.quants.dequantize(data, qtype).reshape(-1, 256)
        got = MODULES[qtype].dequantize_blocks(data)
        np.testing.assert_array_equal(float_bits(got), float_bits(expected))


@pytest.mark.parametrize("qtype", TYPES, ids=IDS)
def test_results_do_not_depend_on_how_blocks_are_split_into_chunks(qtype):
    kernel = MODULES[qtype]
    blocks = np.random.default_rng(8).standard_normal((kernel.CHUNK_BLOCKS + 9, 256))
    blocks = blocks.astype(np.float32)
    whole = kernel.quantize_blocks(blocks)
    pieces = [kernel.quantize_blocks(part) for part in np.array_split(blocks, [5, 200])]
    np.testing.assert_array_equal(whole, np.concatenate(pieces))


@pytest.mark.parametrize("qtype", TYPES, ids=IDS)
def test_all_zero_blocks_become_zero_bytes_and_decode_to_zero(qtype):
    data = quantize(np.zeros((2, 512), np.float32), qtype)
    assert not data.any()
    assert not dequantize(data, qtype, 512).any()


_BLOCKS = arrays(
    np.float32,
    st.tuples(st.integers(1, 3), st.just(256)),
    elements=st.floats(-1e4, 1e4, width=32, allow_subnormal=False),
)


@settings(max_examples=40, deadline=None)
@given(blocks=_BLOCKS, qtype=st.sampled_from(TYPES))
def test_every_element_is_within_one_top_step_plus_half_the_top_min(blocks, qtype):
    """d*smax is the largest sub-block step and dmin*smax the largest offset in the block.

    Requantization rounds each element to the nearest level of its sub-block; the 4- or 6-bit
    sub-scales and the clamp at the ends cost at most about one top step more. Measured worst
    case on varied data is ~0.66 of this bound (Q2_K). Tiny blocks also lose up to half an fp16
    subnormal step of d and of dmin, multiplied by the sub-scale and the level.
    """
    data = MODULES[qtype].quantize_blocks(blocks)
    values = MODULES[qtype].dequantize_blocks(data)
    d, dmin = _head(data, qtype)
    _, smax, nmax = HEAD[qtype]
    bound = (d * smax + dmin * smax / 2) * (1 + 1e-3) + smax * (nmax + 1) * FP16_STEP
    error = np.abs(values.astype(np.float64) - blocks).max(axis=1)
    assert (error <= bound).all(), (error, bound)


@pytest.mark.parametrize("sc_value", [0, 1, 15, 16, 47, 63])
def test_scale_min_packing_round_trips_every_6_bit_position(sc_value):
    rng = np.random.default_rng(sc_value)
    sc = rng.integers(0, 64, (50, 8), dtype=np.uint8)
    m = rng.integers(0, 64, (50, 8), dtype=np.uint8)
    sc[:, sc_value % 8] = sc_value
    got_sc, got_m = kquant_k4.unpack_scale_min_k4(kquant_k4.pack_scale_min_k4(sc, m))
    np.testing.assert_array_equal(got_sc, sc)
    np.testing.assert_array_equal(got_m, m)


def _rmse(rows: np.ndarray, qtype: GGMLType) -> float:
    values = dequantize(quantize(rows, qtype), qtype, rows.shape[1])
    return float(np.sqrt(np.mean((values - rows) ** 2)))


def test_k_quant_accuracy_orders_by_bits_and_beats_q4_0_on_gaussian_data():
    rows = np.random.default_rng(4).standard_normal((16, 1024)).astype(np.float32)
    q4_0 = gguf.quants.dequantize(gguf.quants.quantize(rows, GGMLType.Q4_0), GGMLType.Q4_0)
    rmse_q4_0 = float(np.sqrt(np.mean((q4_0 - rows) ** 2)))
    rmse = {t: _rmse(rows, t) for t in TYPES}
    assert rmse[GGMLType.Q5_K] < rmse[GGMLType.Q4_K] < rmse_q4_0 < rmse[GGMLType.Q2_K]


@pytest.mark.parametrize("position", [0, 17, 255])
@pytest.mark.parametrize("qtype", TYPES, ids=IDS)
def test_nan_input_is_refused_not_silently_mis_quantized(qtype, position):
    blocks = np.random.default_rng(3).standard_normal((3, 256)).astype(np.float32)
    blocks[1, position] = np.nan
    with pytest.raises(QuantizationError, match="NaN"):
        MODULES[qtype].quantize_blocks(blocks)


@pytest.mark.parametrize("qtype", [*TYPES, GGMLType.Q6_K, GGMLType.Q3_K], ids=lambda t: t.name)
def test_plain_ufunc_sums_give_the_same_bytes_as_einsum(qtype, monkeypatch):
    """The fallback taken when a NumPy build's einsum fuses or reorders must be exact too."""
    rows = golden_inputs()["adversarial"]
    with_einsum = quantize(rows, qtype)
    monkeypatch.setattr(kquant, "_SEQUENTIAL_EINSUM", False)
    assert np.array_equal(quantize(rows, qtype), with_einsum)
