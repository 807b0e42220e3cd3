"""Q4_1: 32 weights as 4-bit codes above a minimum, fp16 scale and minimum (20 bytes per block).

Mirrors ggml-quants.c ``quantize_row_q4_1_ref`` and ``dequantize_row_q4_1``::

    byte  0      1      2      3      4      5    ...   19
        [ d (fp16 LE) ][ m (fp16 LE) ][ qs[0]  qs[1] ... qs[15] ]
    qs[j] = q[j] | q[j + 16] << 4        as in Q4_0
    x[j] ≈ q[j] * d + m                   q in 0..15 (two float32 roundings: no FMA in ggml-base)

Quantization: ``min``/``max`` of the block, ``d = (max - min) / 15``, ``id = d ? 1/d : 0``,
``q = MIN(15, (int8_t)((x - min)*id + 0.5f))``, and ``m`` is ``min`` itself. This module also holds
the min/max core that Q5_1 shares. With an importance matrix (``quantize_row_q4_1_impl``) scale and
minimum come from the weighted ``make_qkx3_quants`` search (see weighted.py).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from qconv.gguf.constants import QUANT_SIZES, GGMLType
from qconv.quant import weighted
from qconv.quant.float import fp16_values, put_fp16
from qconv.quant.kquant_search import make_qkx2_quants
from qconv.quant.q4_0 import (
    F32,
    Bytes,
    Floats,
    dequantize_with,
    element_major,
    inverse_scale,
    pack_nibbles,
    quantize_with,
    reject_nan,
    truncate_codes,
    unpack_nibbles,
)

_TYPE_SIZE = QUANT_SIZES[GGMLType.Q4_1][1]


def first_minimum(xt: Floats) -> Floats:
    """Per block (columns of element-major ``xt``): C's running ``if (v < min) min = v``.

    Values are unique except for the signs of zero, so the plain reduction is right unless the
    minimum is zero; then C keeps the first zero it met, whose sign the stored ``m`` shows.
    """
    low: Floats = np.minimum.reduce(xt, axis=0)
    zero = np.flatnonzero(low == 0)
    if zero.size:
        columns = xt[:, zero]
        first = (columns == 0).argmax(axis=0)
        low[zero] = columns[first, np.arange(zero.size)]
    return low


def asymmetric_codes(blocks: Floats, levels: int) -> tuple[Floats, Floats, Bytes]:
    """Q4_1 / Q5_1 core: ``d``, ``min`` and the codes ``(int8_t)((x - min)*id + 0.5f)``.

    C clamps with ``MIN(levels-1, …)`` for Q4_1 only; the clamp never binds (``(x - min)*id``
    stays within float32 rounding of ``levels - 1``), so applying it for both changes no byte.
    ``max - min`` is the same whichever zero C kept as ``max`` (up to the sign of a zero span),
    so only ``min`` needs the first-occurrence rule.
    Blocks whose inverse scale is 0 or overflows get code 0, which C also produces there (0.5f
    truncates to 0; ±inf and NaN convert to 0x80000000), so ``min`` is replaced by 0 in the
    arithmetic to keep ``x - min`` finite.
    """
    xt = element_major(blocks)
    low = first_minimum(xt)
    high = np.maximum.reduce(xt, axis=0)
    with np.errstate(over="ignore"):  # a range beyond float32 gives d = inf, as in C
        span = high - low
    # C's max and min of an all-zero block are the same element, so max - min is +0.0; the
    # reductions may pick zeros of opposite signs, and adding +0.0 turns the -0.0 back.
    span += F32(0)
    d = span / F32(levels - 1)
    reject_nan(d)
    inv, _ = inverse_scale(d)
    offset = np.where(inv == 0, F32(0), low)
    v = blocks - offset[:, None]
    v *= inv[:, None]
    v += F32(0.5)
    return d, low, truncate_codes(v, levels - 1)


def _quantize_chunk(blocks: Floats, out: Bytes) -> None:
    d, low, q = asymmetric_codes(blocks, 16)
    put_fp16(out, 0, d)
    put_fp16(out, 2, low)
    pack_nibbles(q, out[:, 4:])


def dequantize_with_minimum(q: Bytes, d: Floats, m: Floats, out: Floats) -> None:
    """``out = q * d + m`` per block, rounded twice like C's ``x0*d + m`` without FMA."""
    np.multiply(q, d[:, None], out=out, dtype=F32)
    out += m[:, None]


def _dequantize_chunk(data: Bytes, out: Floats) -> None:
    q = unpack_nibbles(data[:, 4:])
    dequantize_with_minimum(q, fp16_values(data[:, :2]), fp16_values(data[:, 2:4]), out)


def _quantize_weighted_chunk(blocks: Floats, weights: Floats) -> Bytes:
    n = blocks.shape[0]
    x, w = weighted.element_major(blocks), weighted.element_major(weights)
    levels, d, the_min = make_qkx2_quants(x, w, 15, -0.9, 0.05, 36, False)
    out = np.empty((n, _TYPE_SIZE), dtype=np.uint8)
    put_fp16(out, 0, d[:n])
    put_fp16(out, 2, -the_min[:n])  # C: y.m = GGML_FP32_TO_FP16(-min) of *the_min
    pack_nibbles(weighted.block_codes(levels, n), out[:, 4:])
    return out


def quantize_rows_imatrix(
    rows: npt.NDArray[np.float32], imatrix: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    """float32 ``(n_rows, n_cols)`` with per-column weights → Q4_1 rows, as quantize_row_q4_1_impl.

    Raises:
        QuantizationError: the rows hold NaN or ±inf.
    """
    return weighted.quantize_rows(rows, imatrix, _TYPE_SIZE, _quantize_weighted_chunk)


def quantize_blocks(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """float32 ``(n_blocks, 32)`` → ``(n_blocks, 20)`` Q4_1 bytes, as quantize_row_q4_1_ref.

    Raises:
        QuantizationError: ``blocks`` is not ``(n_blocks, 32)`` or holds NaN.
    """
    return quantize_with(_quantize_chunk, blocks, _TYPE_SIZE)


def dequantize_blocks(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """``(n_blocks, 20)`` Q4_1 bytes → float32 ``(n_blocks, 32)``, as dequantize_row_q4_1.

    Raises:
        QuantizationError: ``data`` is not ``(n_blocks, 20)``.
    """
    return dequantize_with(_dequantize_chunk, data, _TYPE_SIZE)
