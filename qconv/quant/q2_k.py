"""Q2_K: 256-element super-blocks of sixteen 16-element groups, 2.625 bits per weight.

Mirrors ggml-quants.c ``quantize_row_q2_K_ref`` (no importance matrix), ``quantize_row_q2_K_impl``
(with one) and ``dequantize_row_q2_K``.

Block (84 bytes)::

    offset  0             16                                                   80    82    84
            | scales[16]  | qs[64]                                              | d   | dmin |
              mmmmssss      qs[32h+l] = L[128h+l] | L[128h+32+l]<<2               fp16  fp16
              (4-bit m_g,   | L[128h+64+l]<<4 | L[128h+96+l]<<6   (h < 2, l < 32)
               4-bit sc_g)

Group g covers elements 16g..16g+15: ``y = (d*sc_g)*q - dmin*m_g``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from qconv.gguf.constants import QUANT_SIZES, GGMLType
from qconv.quant.kquant import (
    fp16_bits,
    fp16_to_f32,
    max_positive,
    quantize_in_chunks,
    u16_bytes,
)
from qconv.quant.kquant_k4 import requantize, wrap_u8
from qconv.quant.kquant_search import make_qkx2_quants
from qconv.quant.kquant_weighted import (
    QK_K,
    group_sums,
    impl_weights,
    make_qp_pair,
    quantize_rows_weighted,
    superblock_sum_x2,
)
from qconv.quant.rounding import nearest_int

_TYPE_SIZE = QUANT_SIZES[GGMLType.Q2_K][1]
CHUNK_BLOCKS = 384  # super-blocks per search chunk: amortizes NumPy call cost, stays in cache
_Q4SCALE = np.float32(15.0)
_SHIFTS = (2 * np.arange(4, dtype=np.uint8))[None, None, :, None]


def _scale_bytes(
    scale: npt.NDArray[np.float32], the_min: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint16], npt.NDArray[np.uint16]]:
    """4-bit scales and mins against the block maxima, stored through uint8 like C (no clamp)."""
    max_scale = max_positive(scale)[:, None]
    max_min = max_positive(the_min)[:, None]
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ls = nearest_int(((_Q4SCALE / max_scale) * scale).astype(np.float32))
        lm = nearest_int(((_Q4SCALE / max_min) * the_min).astype(np.float32))
    packed = np.where(max_scale > 0, ls, 0)
    packed = np.where(max_min > 0, packed | (lm << 4), packed)
    d_bits = fp16_bits(max_scale[:, 0] / _Q4SCALE)  # max_scale is +0.0 when C stores fp16(0.f)
    dmin_bits = fp16_bits(max_min[:, 0] / _Q4SCALE)
    return wrap_u8(packed), d_bits, dmin_bits


def _quantize_chunk(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    x = np.ascontiguousarray(blocks.reshape(-1, 16).T)  # element-major (16, n_groups)
    levels, scale, the_min = make_qkx2_quants(x, np.abs(x), 3, -0.5, 0.1, 15, use_mad=True)
    scales, d_bits, dmin_bits = _scale_bytes(scale.reshape(-1, 16), the_min.reshape(-1, 16))
    dg = (fp16_to_f32(d_bits)[:, None] * (scales & 0xF).astype(np.float32)).reshape(-1)
    mg = (fp16_to_f32(dmin_bits)[:, None] * (scales >> 4).astype(np.float32)).reshape(-1)
    return _pack(requantize(x, levels, dg, mg, 3), scales, d_bits, dmin_bits)


def _pack(
    levels: npt.NDArray[np.float32],
    scales: npt.NDArray[np.uint8],
    d_bits: npt.NDArray[np.uint16],
    dmin_bits: npt.NDArray[np.uint16],
) -> npt.NDArray[np.uint8]:
    """Element-major levels (16, n_groups) and the block fields → (n_blocks, 84) bytes."""
    n_blocks = scales.shape[0]
    quads = levels.T.astype(np.uint8).reshape(n_blocks, 2, 4, 32) << _SHIFTS
    qs = np.bitwise_or.reduce(quads, axis=2).reshape(n_blocks, 64)
    packed: npt.NDArray[np.uint8] = np.concatenate(
        [scales, qs, u16_bytes(d_bits), u16_bytes(dmin_bits)], axis=1
    )
    return packed


def _quantize_chunk_weighted(
    blocks: npt.NDArray[np.float32], qw: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    """``quantize_row_q2_K_impl``: note sigma2 = sum(x*x)/256 here, without Q3_K..Q5_K's 2*."""
    n_blocks = blocks.shape[0]
    x = np.ascontiguousarray(blocks.reshape(-1, 16).T)
    sigma2 = superblock_sum_x2(blocks) / np.float32(QK_K)
    w = impl_weights(x, qw, sigma2)
    sw = np.ascontiguousarray(group_sums(w).reshape(n_blocks, 16).T)
    levels, scale, the_min = make_qkx2_quants(x, w, 3, -0.9, 0.05, 36, use_mad=False)
    dm, ls, mm, lm = make_qp_pair(scale, the_min, 15, sw)
    d_bits, dmin_bits = fp16_bits(dm), fp16_bits(mm)
    scales = np.ascontiguousarray((ls | (lm << 4)).T)  # uint8 stores: C's int result truncated
    dg = (fp16_to_f32(d_bits)[:, None] * (scales & 0xF).astype(np.float32)).reshape(-1)
    mg = (fp16_to_f32(dmin_bits)[:, None] * (scales >> 4).astype(np.float32)).reshape(-1)
    return _pack(requantize(x, levels, dg, mg, 3), scales, d_bits, dmin_bits)


def quantize_blocks(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """float32 (n_blocks, 256) → (n_blocks, 84) Q2_K bytes, bit-identical to ggml's reference."""
    return quantize_in_chunks(blocks, _TYPE_SIZE, CHUNK_BLOCKS, _quantize_chunk)


def quantize_rows_imatrix(
    rows: npt.NDArray[np.float32], imatrix: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    """float32 (n_rows, n_cols) with per-column quant weights → Q2_K bytes (n_rows, row_nbytes).

    Bit-identical to ggml's ``quantize_row_q2_K_impl`` (``ggml_quantize_chunk`` with an imatrix).
    """
    return quantize_rows_weighted(
        rows, imatrix, _TYPE_SIZE, 16, CHUNK_BLOCKS, _quantize_chunk_weighted, refuse_nan=True
    )


def dequantize_blocks(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """(n_blocks, 84) Q2_K bytes → float32 (n_blocks, 256), as dequantize_row_q2_K."""
    data = np.ascontiguousarray(data, dtype=np.uint8)
    d = fp16_to_f32(data[:, 80:82].copy().view("<u2")[:, 0])
    dmin = fp16_to_f32(data[:, 82:84].copy().view("<u2")[:, 0])
    scales = data[:, :16]
    qs = data[:, 16:80].reshape(-1, 2, 1, 32)
    q = ((qs >> _SHIFTS) & 3).astype(np.float32).reshape(-1, 16, 16)
    with np.errstate(invalid="ignore", over="ignore"):  # inf d times level 0 is NaN in C too
        scale = (d[:, None] * (scales & 0xF).astype(np.float32))[:, :, None]
        offset = (dmin[:, None] * (scales >> 4).astype(np.float32))[:, :, None]
        values: npt.NDArray[np.float32] = (scale * q - offset).reshape(-1, 256)
    return values
