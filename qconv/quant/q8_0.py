"""Q8_0: 32 weights as signed bytes and one fp16 scale (34 bytes per block).

Mirrors ggml-quants.c ``quantize_row_q8_0_ref`` and ``dequantize_row_q8_0``::

    byte  0      1      2       3      ...   33
        [ d (fp16 LE) ][ qs[0]  qs[1]  ...  qs[31] ]      qs: int8
    x[j] ≈ qs[j] * d

Quantization: ``amax = max|x|``, ``d = amax / 127``, ``id = d ? 1/d : 0``, ``qs = roundf(x*id)``.
``roundf`` rounds half away from zero; ``floor(|v| + 0.5)`` would be wrong at 0.49999997, so the
kernel adds ``copysign(0.49999997f, v)`` (built with integer bit operations, ~10x faster than
``np.copysign``) and truncates, which is exact for every float32.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from qconv.gguf.constants import QUANT_SIZES, GGMLType
from qconv.quant.float import fp16_values, put_fp16
from qconv.quant.q4_0 import (
    F32,
    Bytes,
    Floats,
    dequantize_with,
    element_major,
    inverse_scale,
    quantize_with,
    reject_nan,
)

_TYPE_SIZE = QUANT_SIZES[GGMLType.Q8_0][1]
_SIGN_BIT = np.int32(-(2**31))
_JUST_BELOW_HALF = np.int32(0x3EFFFFFF)  # bits of 0.49999997f, the largest float below 0.5


def _quantize_chunk(blocks: Floats, out: Bytes) -> None:
    magnitudes = element_major(blocks)
    np.abs(magnitudes, out=magnitudes)
    d = np.maximum.reduce(magnitudes, axis=0) / F32(127)
    reject_nan(d)
    inv, overflowed = inverse_scale(d)
    v = blocks * inv[:, None]
    half = v.view(np.int32) & _SIGN_BIT
    half |= _JUST_BELOW_HALF
    v += half.view(F32)
    put_fp16(out, 0, d)
    # Truncating float -> int8 cast of values in (-128, 128): C's roundf result stored as int8.
    np.copyto(out[:, 2:].view(np.int8), v, casting="unsafe")
    if overflowed.any():
        out[overflowed, 2:] = 0


def _dequantize_chunk(data: Bytes, out: Floats) -> None:
    d = fp16_values(data[:, :2])
    np.copyto(out, data[:, 2:].view(np.int8), casting="unsafe")
    out *= d[:, None]


def quantize_blocks(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """float32 ``(n_blocks, 32)`` → ``(n_blocks, 34)`` Q8_0 bytes, as quantize_row_q8_0_ref.

    Raises:
        QuantizationError: ``blocks`` is not ``(n_blocks, 32)`` or holds NaN.
    """
    return quantize_with(_quantize_chunk, blocks, _TYPE_SIZE)


def dequantize_blocks(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """``(n_blocks, 34)`` Q8_0 bytes → float32 ``(n_blocks, 32)``, as dequantize_row_q8_0.

    Raises:
        QuantizationError: ``data`` is not ``(n_blocks, 34)``.
    """
    return dequantize_with(_dequantize_chunk, data, _TYPE_SIZE)
