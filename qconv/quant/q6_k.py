"""Q6_K: 256-element super-blocks of 6-bit levels with 16 signed 8-bit group scales, 210 bytes.

Mirrors ggml-quants.c ``quantize_row_q6_K_ref``, ``quantize_row_q6_K_impl`` (with an importance
matrix) and ``dequantize_row_q6_K``::

    byte 0            128          192            208      210
         | ql[128]    | qh[64]     | scales[16]   | d      |
         | low nibbles| high 2 bits| int8 per 16  | fp16   |

Element e = 128h + 32k + l (half h < 2, quarter k < 4, l < 32) holds level L in 0..63 (value
L - 32): its low nibble is in ``ql[64h + 32*(k % 2) + l]`` (low nibble for k < 2, high for k >= 2)
and its top two bits in ``qh[32h + l]`` bits 2k..2k+1. Group g = e // 16 decodes as
``(d * scales[g]) * (L - 32)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from qconv.gguf.constants import QUANT_SIZES, GGMLType
from qconv.quant.kquant_qx import (
    CHUNK_BLOCKS,
    GROUP_MAX_EPS,
    block_major,
    element_major,
    first_absmax,
    make_qx_quants,
    quantize_in_chunks,
    round_signed_levels,
)
from qconv.quant.kquant_weighted import quantize_rows_weighted
from qconv.quant.rounding import nearest_int

__all__ = ["dequantize_blocks", "quantize_blocks", "quantize_rows_imatrix"]

BLOCK_SIZE, TYPE_SIZE = QUANT_SIZES[GGMLType.Q6_K]
_N_GROUPS = 16
_NMAX = 32
_QH_SHIFTS = np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1)


def quantize_blocks(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """Quantize float32 ``(n_blocks, 256)`` to Q6_K bytes ``(n_blocks, 210)``.

    Bit-identical to ggml's reference quantizer (no importance matrix). Works in chunks of
    super-blocks so the element-major work arrays stay cache-sized.

    Raises:
        Nothing: every finite or non-finite input gives bytes, as in C.
    """
    return quantize_in_chunks(blocks, TYPE_SIZE, _quantize_chunk)


def _quantize_chunk(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    group_scales, levels = make_qx_quants(element_major(blocks), _NMAX)
    return _finish_chunk(blocks, group_scales, levels)


def _quantize_chunk_weighted(
    blocks: npt.NDArray[np.float32], qw: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    # quantize_row_q6_K_impl hands make_qx_quants the raw quant weights (its sigma2 weighting is
    # commented out in ggml-quants.c); everything after the group search is as without them.
    group_scales, levels = make_qx_quants(element_major(blocks), _NMAX, qw)
    return _finish_chunk(blocks, group_scales, levels)


def quantize_rows_imatrix(
    rows: npt.NDArray[np.float32], imatrix: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    """float32 (n_rows, n_cols) with per-column quant weights → Q6_K bytes (n_rows, row_nbytes).

    Bit-identical to ggml's ``quantize_row_q6_K_impl`` (``ggml_quantize_chunk`` with an imatrix).
    """
    return quantize_rows_weighted(
        rows, imatrix, TYPE_SIZE, 16, CHUNK_BLOCKS, _quantize_chunk_weighted, refuse_nan=False
    )


def _finish_chunk(
    blocks: npt.NDArray[np.float32],
    group_scales: npt.NDArray[np.float32],
    levels: npt.NDArray[np.int8],
) -> npt.NDArray[np.uint8]:
    """Super-block scale, int8 group scales, requantization and packing from the group search."""
    n_blocks = blocks.shape[0]
    scales = group_scales.reshape(n_blocks, _N_GROUPS)
    max_abs, max_scale = first_absmax(np.ascontiguousarray(scales.T))
    empty = max_abs < GROUP_MAX_EPS  # C zeroes the whole block
    iscale = np.float32(-128) / np.where(empty, np.float32(1), max_scale)
    d = (np.float32(1) / iscale).astype(np.float16)
    # MIN(127, …) then the int -> int8_t store, which wraps; the dominant group lands on -128.
    q_scales = np.minimum(
        nearest_int(np.multiply(iscale[:, None], scales, dtype=np.float32)), 127
    ).astype(np.int8)
    dg = (d.astype(np.float32)[:, None] * q_scales.astype(np.float32))[:, :, None]
    nonzero = dg != 0  # C keeps make_qx_quants' levels where the group scale is 0
    # Requantized in the blocks' own layout, which saves transposing int8 levels back.
    grouped = blocks.reshape(n_blocks, _N_GROUPS, 16)
    requant = round_signed_levels(
        np.divide(grouped, np.where(nonzero, dg, 1), dtype=np.float32), _NMAX
    )
    if not nonzero.all():  # a broadcast np.where on int8 costs ~3 ns per element: rarely run
        searched = block_major(levels, n_blocks).view(np.int8).reshape(grouped.shape)
        requant = np.where(nonzero, requant, searched)
    packed = np.concatenate(
        [
            *_pack_levels(requant.reshape(n_blocks, BLOCK_SIZE).view(np.uint8)),
            q_scales.view(np.uint8),
            d.reshape(-1, 1).view(np.uint8),
        ],
        axis=1,
    )
    packed[empty] = 0
    assert packed.shape[1] == TYPE_SIZE
    return packed


def _pack_levels(
    levels: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """(n, 256) levels 0..63 → (ql (n, 128), qh (n, 64)), the layout in the module docstring."""
    n = levels.shape[0]
    quarters = levels.reshape(n, 2, 4, 32)
    ql = (quarters[:, :, :2] & 15) | ((quarters[:, :, 2:] & 15) << 4)
    high = quarters >> 4
    qh = high[:, :, 0] | (high[:, :, 1] << 2) | (high[:, :, 2] << 4) | (high[:, :, 3] << 6)
    return ql.reshape(n, 128).astype(np.uint8), qh.reshape(n, 64).astype(np.uint8)


def dequantize_blocks(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Decode Q6_K bytes ``(n_blocks, 210)`` to float32 ``(n_blocks, 256)``, as dequantize_row_q6_K.

    Raises:
        Nothing: any bytes decode (a non-finite fp16 d gives non-finite values, as in C).
    """
    data = np.asarray(data, dtype=np.uint8)
    n = data.shape[0]
    ql = data[:, :128].reshape(n, 2, 2, 32)
    qh = data[:, 128:192].reshape(n, 2, 1, 32)
    low = np.concatenate([ql & 15, ql >> 4], axis=2)
    high = (qh >> _QH_SHIFTS) & 3
    values = (low | (high << 4)).astype(np.float32) - np.float32(_NMAX)
    scales = data[:, 192:208].view(np.int8).astype(np.float32)
    d = np.ascontiguousarray(data[:, 208:210]).view(np.float16).astype(np.float32)
    dl = d * scales  # C: d * sc[is] * q, i.e. (d*sc)*q
    decoded: npt.NDArray[np.float32] = np.multiply(
        dl[:, :, None], values.reshape(n, _N_GROUPS, 16), dtype=np.float32
    )
    return decoded.reshape(n, BLOCK_SIZE)
