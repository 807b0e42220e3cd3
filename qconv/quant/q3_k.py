"""Q3_K: 256-element super-blocks of 3-bit levels with 16 six-bit group scales, 110 bytes.

Mirrors ggml-quants.c ``quantize_row_q3_K_ref``, ``quantize_row_q3_K_impl`` (with an importance
matrix) and ``dequantize_row_q3_K``::

    byte 0          32            96             108     110
         | hmask[32] | qs[64]      | scales[12]   | d     |
         | bit 2     | bits 0-1    | 6-bit, +32   | fp16  |

Element e holds level L in 0..7 (value L - 4):
* ``hmask[e % 32]`` bit ``e // 32`` is bit 2 of L;
* with e = 128h + 32k + l, ``qs[32h + l]`` bits 2k..2k+1 are bits 0-1 of L.

Group j = e // 16 has a scale s_j in -32..31, stored as l_j = s_j + 32 (0..63)::

    scales[j]     (j < 8)  bits 0-3 = l_j & 15        bits 4-7 = l_{j+8} & 15
    scales[8 + k] (k < 4)  bits 2m..2m+1 = l_{k+4m} >> 4   for m < 4

and decodes as ``(d * s_j) * (L - 4)``.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from qconv.gguf.constants import QUANT_SIZES, GGMLType
from qconv.quant.kquant_q3 import make_q3_quants
from qconv.quant.kquant_qx import (
    block_major,
    element_major,
    first_absmax,
    make_qx_quants,
    quantize_in_chunks,
    round_signed_levels,
)
from qconv.quant.kquant_weighted import (
    QK_K,
    group_sums,
    impl_weights,
    quantize_rows_weighted,
    superblock_sum_x2,
)
from qconv.quant.rounding import nearest_int

__all__ = ["dequantize_blocks", "quantize_blocks", "quantize_rows_imatrix"]

BLOCK_SIZE, TYPE_SIZE = QUANT_SIZES[GGMLType.Q3_K]
_N_GROUPS = 16
_NMAX = 4
# make_q3_quants' later rounds cost mostly per call whatever their width, so bigger chunks than
# Q6_K's pay: 2048 super-blocks measured ~10% faster than 1024 here (and 3072 no better).
CHUNK_BLOCKS = 2048
# With an imatrix the group search is make_qx_quants, as for Q6_K: Q6_K's chunk size.
WEIGHTED_CHUNK_BLOCKS = 512
_PAIR_SHIFTS = np.array([0, 2, 4, 6], dtype=np.uint8)
_BIT_SHIFTS = np.arange(8, dtype=np.uint8)
_BYTE_ONES = np.uint64(0x0101010101010101)
_BYTE_THREES = np.uint64(0x0303030303030303)


def quantize_blocks(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """Quantize float32 ``(n_blocks, 256)`` to Q3_K bytes ``(n_blocks, 110)``.

    Bit-identical to ggml's reference quantizer (no importance matrix). Works in chunks of
    super-blocks so the element-major work arrays stay cache-sized.

    Raises:
        Nothing: every input gives bytes, as in C.
    """
    # One scratch buffer for make_q3_quants across all chunks: fresh memory costs page faults.
    scratch = np.empty(2 * min(np.shape(blocks)[0], CHUNK_BLOCKS) * BLOCK_SIZE, dtype=np.float32)
    quantize_chunk = functools.partial(_quantize_chunk, scratch=scratch)
    return quantize_in_chunks(blocks, TYPE_SIZE, quantize_chunk, CHUNK_BLOCKS)


def _quantize_chunk(
    blocks: npt.NDArray[np.float32], scratch: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    n_blocks = blocks.shape[0]
    x = element_major(blocks)
    group_scales, levels = make_q3_quants(x, _NMAX, scratch)
    scales = group_scales.reshape(n_blocks, _N_GROUPS)
    _, max_scale = first_absmax(np.ascontiguousarray(scales.T))
    has_scale = max_scale != 0
    iscale = np.float32(-32) / np.where(has_scale, max_scale, np.float32(1))
    # C stores nearest_int in an int8_t (wrapping) before clamping to -32..31.
    stored = nearest_int(np.multiply(iscale[:, None], scales, dtype=np.float32)).astype(np.int8)
    # Without a scale C leaves the 12 scale bytes zeroed, i.e. every stored l is 0.
    stored = np.where(has_scale[:, None], np.clip(stored, -32, 31) + np.int8(32), np.int8(0))
    d = np.where(has_scale, np.float32(1) / iscale, np.float32(0)).astype(np.float16)
    return _finish_chunk(blocks, levels, stored, d)


def _quantize_chunk_weighted(
    blocks: npt.NDArray[np.float32], qw: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    """``quantize_row_q3_K_impl``: weighted make_qx_quants for the groups, then for their scales."""
    n_blocks = blocks.shape[0]
    x = element_major(blocks)
    sigma2 = (np.float32(2) * superblock_sum_x2(blocks)) / np.float32(QK_K)
    w = impl_weights(x, qw, sigma2)
    sw = np.ascontiguousarray(group_sums(w).reshape(n_blocks, _N_GROUPS).T)
    group_scales, levels = make_qx_quants(x, _NMAX, w)
    scales_t = np.ascontiguousarray(group_scales.reshape(n_blocks, _N_GROUPS).T)
    d_block, codes = make_qx_quants(scales_t, 32, sw)  # codes l + 32 in 0..63, as C packs them
    stored = np.ascontiguousarray(codes.T)
    return _finish_chunk(blocks, levels, stored, d_block.astype(np.float16))


def quantize_rows_imatrix(
    rows: npt.NDArray[np.float32], imatrix: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    """float32 (n_rows, n_cols) with per-column quant weights → Q3_K bytes (n_rows, row_nbytes).

    Bit-identical to ggml's ``quantize_row_q3_K_impl`` (``ggml_quantize_chunk`` with an imatrix).
    """
    return quantize_rows_weighted(
        rows, imatrix, TYPE_SIZE, 16, WEIGHTED_CHUNK_BLOCKS, _quantize_chunk_weighted,
        refuse_nan=False,
    )  # fmt: skip


def _finish_chunk(
    blocks: npt.NDArray[np.float32],
    levels: npt.NDArray[np.int8],
    stored: npt.NDArray[np.int8],
    d: npt.NDArray[np.float16],
) -> npt.NDArray[np.uint8]:
    """Requantize against the stored scales (codes 0..63 per group, fp16 d) and pack the block."""
    n_blocks = blocks.shape[0]
    group_d = d.astype(np.float32)[:, None] * (stored.astype(np.float32) - np.float32(32))
    dg = group_d[:, :, None]
    nonzero = dg != 0  # C keeps make_q3_quants' levels where the group scale is 0
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
            _pack_scales(stored.view(np.uint8)),
            d.reshape(-1, 1).view(np.uint8),
        ],
        axis=1,
    )
    assert packed.shape[1] == TYPE_SIZE
    return packed


def _pack_levels(
    levels: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """(n, 256) levels 0..7 → (hmask (n, 32), qs (n, 64)), the layout in the module docstring.

    Works on 8 levels per uint64 word: every shift keeps each byte's result inside that byte
    (after masking), so this is byte-wise arithmetic at an eighth of the calls' element count.
    """
    n = levels.shape[0]
    words = np.ascontiguousarray(levels).view(np.uint64).reshape(n, 8, 4)  # [e // 32, e % 32 / 8]
    high = (words >> np.uint64(2)) & _BYTE_ONES
    hmask = high[:, 0].copy()
    for bit in range(1, 8):
        hmask |= high[:, bit] << np.uint64(bit)
    low = (words & _BYTE_THREES).reshape(n, 2, 4, 4)  # [h, k, l / 8]
    qs = low[:, :, 0] | (low[:, :, 1] << np.uint64(2))
    qs |= (low[:, :, 2] << np.uint64(4)) | (low[:, :, 3] << np.uint64(6))
    return hmask.view(np.uint8).reshape(n, 32), qs.view(np.uint8).reshape(n, 64)


def _pack_scales(stored: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """(n, 16) stored scales 0..63 → the 12 scale bytes."""
    n = stored.shape[0]
    nibbles = (stored[:, :8] & 15) | ((stored[:, 8:] & 15) << 4)
    top = (stored >> 4).reshape(n, 4, 4)  # [m, k] = top bits of l_{k+4m}
    pairs = top[:, 0] | (top[:, 1] << 2) | (top[:, 2] << 4) | (top[:, 3] << 6)
    return np.concatenate([nibbles, pairs], axis=1)


def _unpack_scales(packed: npt.NDArray[np.uint8]) -> npt.NDArray[np.int8]:
    """The 12 scale bytes → (n, 16) signed group scales l_j - 32."""
    n = packed.shape[0]
    nibbles = np.concatenate([packed[:, :8] & 15, packed[:, :8] >> 4], axis=1)
    top = (packed[:, None, 8:12] >> _PAIR_SHIFTS[:, None]) & 3  # [m, k]
    stored = nibbles | (top.reshape(n, _N_GROUPS) << 4)
    signed: npt.NDArray[np.int8] = (stored - 32).astype(np.int8)
    return signed


def dequantize_blocks(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Decode Q3_K bytes ``(n_blocks, 110)`` to float32 ``(n_blocks, 256)``, as dequantize_row_q3_K.

    Raises:
        Nothing: any bytes decode (a non-finite fp16 d gives non-finite values, as in C).
    """
    data = np.asarray(data, dtype=np.uint8)
    n = data.shape[0]
    high = (data[:, None, :32] >> _BIT_SHIFTS[:, None]) & 1  # (n, 8, 32): [e // 32, e % 32]
    low = (data[:, 32:96].reshape(n, 2, 1, 32) >> _PAIR_SHIFTS[:, None]) & 3  # [h, k, l]
    levels = low.reshape(n, BLOCK_SIZE) | (high.reshape(n, BLOCK_SIZE) << 2)
    values = levels.astype(np.float32) - np.float32(_NMAX)
    d = np.ascontiguousarray(data[:, 108:110]).view(np.float16).astype(np.float32)
    dl = d * _unpack_scales(data[:, 96:108]).astype(np.float32)  # C: (d * (l - 32)) * q
    decoded: npt.NDArray[np.float32] = np.multiply(
        dl[:, :, None], values.reshape(n, _N_GROUPS, 16), dtype=np.float32
    )
    return decoded.reshape(n, BLOCK_SIZE)
