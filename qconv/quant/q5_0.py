"""Q5_0: 32 weights as 5-bit codes around zero and one fp16 scale (22 bytes per block).

Mirrors ggml-quants.c ``quantize_row_q5_0_ref`` and ``dequantize_row_q5_0``::

    byte  0      1      2    3    4    5      6      7    ...   21
        [ d (fp16 LE) ][ qh (uint32 LE)    ][ qs[0]  qs[1] ... qs[15] ]
    qs[j] = q[j] & 15 | (q[j + 16] & 15) << 4     low four bits, as in Q4_0
    qh bit j = bit 4 of q[j]                       j = 0..31
    x[j] ≈ (q[j] - 16) * d                         q in 0..31

Quantization is Q4_0's with 32 levels: ``d = max / -16``,
``q = MIN(31, (int8_t)(x*id + 16.5f))``. This module also holds the ``qh`` packing Q5_1 shares.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from qconv.format import QK, QUANT_SIZES, GGMLType
from qconv.quant.float import fp16_values, put_fp16
from qconv.quant.q4_0 import (
    F32,
    U64,
    Bytes,
    Floats,
    byte_blocks,
    float_blocks,
    map_chunks,
    pack_nibbles,
    symmetric_codes,
    unpack_nibbles,
)

_TYPE_SIZE = QUANT_SIZES[GGMLType.Q5_0][1]
_BYTE_LSB = U64(0x0101010101010101)
# Multiplying eight 0/1 bytes by this sums bit k of byte k into bits 56+k without carries (every
# partial product lands on its own bit), so ``>> 56`` gathers them into one byte.
_GATHER_BITS = U64(0x0102040810204080)
_FOUR = U64(4)
_TOP_BYTE = U64(56)


def pack_high_bits(q: Bytes, out: Bytes) -> None:
    """``(n, 32)`` 5-bit codes → ``out`` ``(n, 4)``: LE uint32 ``qh``, bit j = ``q[j] >> 4``."""
    bits = (q.view(U64) >> _FOUR) & _BYTE_LSB
    bits *= _GATHER_BITS
    bits >>= _TOP_BYTE
    out[...] = bits.astype(np.uint8)


def unpack_codes(qh: Bytes, qs: Bytes) -> Bytes:
    """``qh`` ``(n, 4)`` and ``qs`` ``(n, 16)`` → the ``(n, 32)`` 5-bit codes."""
    q = unpack_nibbles(qs)
    high = np.unpackbits(np.ascontiguousarray(qh), axis=1, bitorder="little")
    high <<= 4
    q |= high
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


def quantize_blocks(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """float32 ``(n_blocks, 32)`` → ``(n_blocks, 22)`` Q5_0 bytes, as quantize_row_q5_0_ref.

    Raises:
        QuantizationError: ``blocks`` is not ``(n_blocks, 32)``.
    """
    blocks = float_blocks(blocks)
    out = np.empty((blocks.shape[0], _TYPE_SIZE), dtype=np.uint8)
    map_chunks(blocks, out, _quantize_chunk)
    return out


def dequantize_blocks(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """``(n_blocks, 22)`` Q5_0 bytes → float32 ``(n_blocks, 32)``, as dequantize_row_q5_0.

    Raises:
        QuantizationError: ``data`` is not ``(n_blocks, 22)``.
    """
    data = byte_blocks(data, _TYPE_SIZE)
    out = np.empty((data.shape[0], QK), dtype=F32)
    map_chunks(data, out, _dequantize_chunk)
    return out
