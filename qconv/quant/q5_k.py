"""Q5_K: 256-element super-blocks of eight 32-element sub-blocks, 5.5 bits per weight.

Mirrors ggml-quants.c ``quantize_row_q5_K_ref`` (no importance matrix), ``quantize_row_q5_K_impl``
(with one) and ``dequantize_row_q5_K``.

Block (176 bytes)::

    offset  0    2       4            16        48                                       176
            | d  | dmin  | scales[12] | qh[32]  | qs[128]                                  |
            fp16  fp16    6-bit sc/m   high bits low nibbles as Q4_K: qs[32c+l] = L[64c+l] & 15
                                                  | (L[64c+32+l] & 15) << 4   (c < 4, l < 32)

Bit 4 of element 32j+l (sub-block j) is ``qh[l]`` bit j. ``y = (d*sc_j)*q - dmin*m_j``; the scales
packing is drawn in kquant.py.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from qconv.gguf.constants import QUANT_SIZES, GGMLType
from qconv.quant.kquant import quantize_in_chunks
from qconv.quant.kquant_k4 import dequantize_k4, quantize_k4_superblocks
from qconv.quant.kquant_weighted import quantize_k4_weighted, quantize_rows_weighted

_TYPE_SIZE = QUANT_SIZES[GGMLType.Q5_K][1]
CHUNK_BLOCKS = 512  # super-blocks per search chunk, as for Q4_K
_BIT_WEIGHTS = (np.uint8(1) << np.arange(8, dtype=np.uint8))[None, :, None]


def _pack_levels(levels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    subs = levels.reshape(-1, 8, 32)
    qh = np.bitwise_or.reduce((subs >> 4) * _BIT_WEIGHTS, axis=1)
    low = (subs & 0xF).reshape(-1, 4, 2, 32)
    qs = (low[:, :, 0] | (low[:, :, 1] << 4)).reshape(-1, 128)
    packed: npt.NDArray[np.uint8] = np.concatenate([qh, qs], axis=1).astype(np.uint8)
    return packed


def _quantize_chunk(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    head, levels = quantize_k4_superblocks(blocks, nmax=31, rmin=-0.5, nstep=15)
    packed: npt.NDArray[np.uint8] = np.concatenate([head, _pack_levels(levels)], axis=1)
    return packed


def quantize_blocks(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """float32 (n_blocks, 256) → (n_blocks, 176) Q5_K bytes, bit-identical to ggml's reference."""
    return quantize_in_chunks(blocks, _TYPE_SIZE, CHUNK_BLOCKS, _quantize_chunk)


def _quantize_chunk_weighted(
    blocks: npt.NDArray[np.float32], qw: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    head, levels = quantize_k4_weighted(blocks, qw, nmax=31, clamp_codes=True)
    packed: npt.NDArray[np.uint8] = np.concatenate([head, _pack_levels(levels)], axis=1)
    return packed


def quantize_rows_imatrix(
    rows: npt.NDArray[np.float32], imatrix: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    """float32 (n_rows, n_cols) with per-column quant weights → Q5_K bytes (n_rows, row_nbytes).

    Bit-identical to ggml's ``quantize_row_q5_K_impl`` (``ggml_quantize_chunk`` with an imatrix).
    """
    return quantize_rows_weighted(
        rows, imatrix, _TYPE_SIZE, 32, CHUNK_BLOCKS, _quantize_chunk_weighted, refuse_nan=True
    )


def dequantize_blocks(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """(n_blocks, 176) Q5_K bytes → float32 (n_blocks, 256), as dequantize_row_q5_K."""
    return dequantize_k4(data, qs_offset=48, qh_offset=16)
