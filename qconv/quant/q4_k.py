"""Q4_K: 256-element super-blocks of eight 32-element sub-blocks, 4.5 bits per weight.

Mirrors ggml-quants.c ``quantize_row_q4_K_ref`` (no importance matrix), ``quantize_row_q4_K_impl``
(with one) and ``dequantize_row_q4_K``.

Block (144 bytes)::

    offset  0    2       4            16                                  144
            | d  | dmin  | scales[12] | qs[128]                             |
            fp16  fp16    6-bit sc/m   qs[32c+l] = L[64c+l] | L[64c+32+l]<<4  (c < 4, l < 32)

Sub-block j (elements 32j..32j+31) is chunk j//2, low nibble for even j, high nibble for odd j;
``y = (d*sc_j)*q - dmin*m_j``. The scales packing is drawn in kquant.py.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from qconv.gguf.constants import QUANT_SIZES, GGMLType
from qconv.quant.kquant import quantize_in_chunks
from qconv.quant.kquant_k4 import dequantize_k4, quantize_k4_superblocks
from qconv.quant.kquant_weighted import quantize_k4_weighted, quantize_rows_weighted

_TYPE_SIZE = QUANT_SIZES[GGMLType.Q4_K][1]
CHUNK_BLOCKS = 512  # super-blocks per search chunk: amortizes NumPy call cost, stays in cache


def _pack_nibbles(levels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    pairs = levels.reshape(-1, 4, 2, 32)
    return (pairs[:, :, 0] | (pairs[:, :, 1] << 4)).astype(np.uint8).reshape(-1, 128)


def _quantize_chunk(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    head, levels = quantize_k4_superblocks(blocks, nmax=15, rmin=-1.0, nstep=20)
    return np.concatenate([head, _pack_nibbles(levels)], axis=1)


def quantize_blocks(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """float32 (n_blocks, 256) → (n_blocks, 144) Q4_K bytes, bit-identical to ggml's reference."""
    return quantize_in_chunks(blocks, _TYPE_SIZE, CHUNK_BLOCKS, _quantize_chunk)


def _quantize_chunk_weighted(
    blocks: npt.NDArray[np.float32], qw: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    head, levels = quantize_k4_weighted(blocks, qw, nmax=15, clamp_codes=False)
    packed: npt.NDArray[np.uint8] = np.concatenate([head, _pack_nibbles(levels)], axis=1)
    return packed


def quantize_rows_imatrix(
    rows: npt.NDArray[np.float32], imatrix: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    """float32 (n_rows, n_cols) with per-column quant weights → Q4_K bytes (n_rows, row_nbytes).

    Bit-identical to ggml's ``quantize_row_q4_K_impl`` (``ggml_quantize_chunk`` with an imatrix).
    """
    return quantize_rows_weighted(
        rows, imatrix, _TYPE_SIZE, 32, CHUNK_BLOCKS, _quantize_chunk_weighted, refuse_nan=True
    )


def dequantize_blocks(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """(n_blocks, 144) Q4_K bytes → float32 (n_blocks, 256), as dequantize_row_q4_K."""
    return dequantize_k4(data, qs_offset=16)
