"""Q5_1: 32 weights as 5-bit codes above a minimum, fp16 scale and minimum (24 bytes per block).

Mirrors ggml-quants.c ``quantize_row_q5_1_ref`` and ``dequantize_row_q5_1``::

    byte  0      1      2      3      4    5    6    7      8    ...   23
        [ d (fp16 LE) ][ m (fp16 LE) ][ qh (uint32 LE)    ][ qs[0] ... qs[15] ]
    qs, qh: as in Q5_0
    x[j] ≈ q[j] * d + m                 q in 0..31 (two float32 roundings: no FMA in ggml-base)

Quantization is Q4_1's with 32 levels: ``d = (max - min) / 31``,
``q = (uint8_t)((x - min)*id + 0.5f)``. With an importance matrix (``quantize_row_q5_1_impl``) scale
and minimum come from the weighted ``make_qkx3_quants`` search (see weighted.py).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from qconv.gguf.constants import QUANT_SIZES, GGMLType
from qconv.quant import weighted
from qconv.quant.float import fp16_values, put_fp16
from qconv.quant.kquant_search import make_qkx2_quants
from qconv.quant.q4_0 import (
    Bytes,
    Floats,
    dequantize_with,
    pack_nibbles,
    quantize_with,
)
from qconv.quant.q4_1 import asymmetric_codes, dequantize_with_minimum
from qconv.quant.q5_0 import pack_high_bits, unpack_codes

_TYPE_SIZE = QUANT_SIZES[GGMLType.Q5_1][1]


def _quantize_chunk(blocks: Floats, out: Bytes) -> None:
    d, low, q = asymmetric_codes(blocks, 32)
    put_fp16(out, 0, d)
    put_fp16(out, 2, low)
    pack_high_bits(q, out[:, 4:8])
    pack_nibbles(q, out[:, 8:])


def _dequantize_chunk(data: Bytes, out: Floats) -> None:
    q = unpack_codes(data[:, 4:8], data[:, 8:])
    dequantize_with_minimum(q, fp16_values(data[:, :2]), fp16_values(data[:, 2:4]), out)


def _quantize_weighted_chunk(blocks: Floats, weights: Floats) -> Bytes:
    n = blocks.shape[0]
    x, w = weighted.element_major(blocks), weighted.element_major(weights)
    levels, d, the_min = make_qkx2_quants(x, w, 31, -0.9, 0.05, 36, False)
    out = np.empty((n, _TYPE_SIZE), dtype=np.uint8)
    q = weighted.block_codes(levels, n)
    put_fp16(out, 0, d[:n])
    put_fp16(out, 2, -the_min[:n])  # C: y.m = GGML_FP32_TO_FP16(-min) of *the_min
    pack_high_bits(q, out[:, 4:8])
    pack_nibbles(q, out[:, 8:])
    return out


def quantize_rows_imatrix(
    rows: npt.NDArray[np.float32], imatrix: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    """float32 ``(n_rows, n_cols)`` with per-column weights → Q5_1 rows, as quantize_row_q5_1_impl.

    Raises:
        QuantizationError: the rows hold NaN or ±inf.
    """
    return weighted.quantize_rows(rows, imatrix, _TYPE_SIZE, _quantize_weighted_chunk)


def quantize_blocks(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """float32 ``(n_blocks, 32)`` → ``(n_blocks, 24)`` Q5_1 bytes, as quantize_row_q5_1_ref.

    Raises:
        QuantizationError: ``blocks`` is not ``(n_blocks, 32)`` or holds NaN.
    """
    return quantize_with(_quantize_chunk, blocks, _TYPE_SIZE)


def dequantize_blocks(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """``(n_blocks, 24)`` Q5_1 bytes → float32 ``(n_blocks, 32)``, as dequantize_row_q5_1.

    Raises:
        QuantizationError: ``data`` is not ``(n_blocks, 24)``.
    """
    return dequantize_with(_dequantize_chunk, data, _TYPE_SIZE)
