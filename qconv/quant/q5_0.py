"""Q5_0: 32 weights as 5-bit codes around zero and one fp16 scale (22 bytes per block).

Mirrors ggml-quants.c ``quantize_row_q5_0_ref`` and ``dequantize_row_q5_0``::

    byte  0      1      2    3    4    5      6      7    ...   21
        [ d (fp16 LE) ][ qh (uint32 LE)    ][ qs[0]  qs[1] ... qs[15] ]
    qs[j] = q[j] & 15 | (q[j + 16] & 15) << 4     low four bits, as in Q4_0
    qh bit j = bit 4 of q[j]                       j = 0..31
    x[j] ≈ (q[j] - 16) * d                         q in 0..31

Quantization is Q4_0's with 32 levels: ``d = max / -16``,
``q = MIN(31, (int8_t)(x*id + 16.5f))``; with an importance matrix, the weighted
``make_qx_quants`` search of weighted.py (``quantize_row_q5_0_impl``). This module also holds the
``qh`` packing Q5_1 shares.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from qconv.gguf.constants import QUANT_SIZES, GGMLType
from qconv.quant import weighted
from qconv.quant.float import fp16_values, put_fp16
from qconv.quant.q4_0 import (
    F32,
    U64,
    Bytes,
    Floats,
    dequantize_with,
    pack_nibbles,
    quantize_with,
    symmetric_codes,
    unpack_nibbles,
)

_TYPE_SIZE = QUANT_SIZES[GGMLType.Q5_0][1]
_BYTE_LSB = U64(0x0101010101010101)
# Multiplying eight 0/1 bytes by this sums bit k of byte k into bits 56+k without carries (every
# partial product lands on its own bit), so ``>> 56`` gathers them into one byte.
_GATHER_BITS = U64(0x0102040810204080)
# The reverse: replicate a byte into all eight, keep bit k in byte k, and turn each non-zero byte
# into 0x10 (adding 0x7F carries into bit 7 only when the byte is non-zero; no byte overflows).
_REPLICATE = U64(0x0101010101010101)
_BIT_K_OF_BYTE_K = U64(0x8040201008040201)
_SEVEN_F = U64(0x7F7F7F7F7F7F7F7F)
_BYTE_MSB = U64(0x8080808080808080)
_FOUR = U64(4)
_THREE = U64(3)
_TOP_BYTE = U64(56)


def pack_high_bits(q: Bytes, out: Bytes) -> None:
    """``(n, 32)`` 5-bit codes → ``out`` ``(n, 4)``: LE uint32 ``qh``, bit j = ``q[j] >> 4``."""
    bits = (q.view(U64) >> _FOUR) & _BYTE_LSB
    bits *= _GATHER_BITS
    bits >>= _TOP_BYTE
    # Written as one uint32 per block: a (n, 4) byte assignment runs four bytes per inner loop.
    out.view("<u4")[:, 0] = bits.astype(np.uint8).view("<u4")[:, 0]


def high_bits(qh: Bytes) -> Bytes:
    """``qh`` ``(n, 4)`` → ``(n, 32)`` bytes, 0x10 where bit j of the LE uint32 is set, else 0."""
    spread = qh.astype(U64)
    spread *= _REPLICATE
    spread &= _BIT_K_OF_BYTE_K
    spread += _SEVEN_F
    spread &= _BYTE_MSB
    spread >>= _THREE
    return spread.view(np.uint8).reshape(-1, 32)


def unpack_codes(qh: Bytes, qs: Bytes) -> Bytes:
    """``qh`` ``(n, 4)`` and ``qs`` ``(n, 16)`` → the ``(n, 32)`` 5-bit codes."""
    q = unpack_nibbles(qs)
    q |= high_bits(qh)
    return q


def _quantize_chunk(blocks: Floats, out: Bytes) -> None:
    d, q = symmetric_codes(blocks, 32)
    put_fp16(out, 0, d)
    pack_high_bits(q, out[:, 2:6])
    pack_nibbles(q, out[:, 6:])


def _dequantize_chunk(data: Bytes, out: Floats) -> None:
    d = fp16_values(data[:, :2])
    np.subtract(unpack_codes(data[:, 2:6], data[:, 6:]), F32(16), out=out, dtype=F32)
    out *= d[:, None]


def _quantize_weighted_chunk(blocks: Floats, weights: Floats) -> Bytes:
    n = blocks.shape[0]
    d, levels = weighted.make_qx_quants(
        weighted.element_major(blocks), weighted.element_major(weights), 16
    )
    out = np.empty((n, _TYPE_SIZE), dtype=np.uint8)
    q = weighted.block_codes(levels, n)
    put_fp16(out, 0, d[:n])
    pack_high_bits(q, out[:, 2:6])
    pack_nibbles(q, out[:, 6:])
    return out


def quantize_rows_imatrix(
    rows: npt.NDArray[np.float32], imatrix: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    """float32 ``(n_rows, n_cols)`` with per-column weights → Q5_0 rows, as quantize_row_q5_0_impl.

    Raises:
        QuantizationError: the rows hold NaN or ±inf.
    """
    return weighted.quantize_rows(rows, imatrix, _TYPE_SIZE, _quantize_weighted_chunk)


def quantize_blocks(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """float32 ``(n_blocks, 32)`` → ``(n_blocks, 22)`` Q5_0 bytes, as quantize_row_q5_0_ref.

    Raises:
        QuantizationError: ``blocks`` is not ``(n_blocks, 32)`` or holds NaN.
    """
    return quantize_with(_quantize_chunk, blocks, _TYPE_SIZE)


def dequantize_blocks(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """``(n_blocks, 22)`` Q5_0 bytes → float32 ``(n_blocks, 32)``, as dequantize_row_q5_0.

    Raises:
        QuantizationError: ``data`` is not ``(n_blocks, 22)``.
    """
    return dequantize_with(_dequantize_chunk, data, _TYPE_SIZE)
