"""F32, F16 and BF16 "kernels" (block size 1), plus the fp16 scale packing every block type uses.

Byte layout, one element per block, little-endian:

    F32   [b0 b1 b2 b3]    IEEE binary32
    F16   [b0 b1]          IEEE binary16: ggml_fp16_t
    BF16  [b0 b1]          high 16 bits of the binary32, rounded: ggml_bf16_t

Mirrors ggml-impl.h: ``ggml_compute_fp32_to_fp16`` (round-to-nearest-even, correct subnormals,
overflow to ±inf; NumPy's float16 cast gives the same bits for every non-NaN input) and
``ggml_compute_fp32_to_bf16`` (round-to-nearest-even on the bits, no flush-to-zero, NaN quieted as
``(bits >> 16) | 0x40``). F16 NaN payloads follow NumPy's cast, which is what convert_hf_to_gguf.py
writes (it calls ``astype(np.float16)`` too). All three widen back to float32 exactly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_F32 = np.dtype("<f4")
_F16 = np.dtype("<f2")
_U16 = np.dtype("<u2")
_U32 = np.dtype("<u4")

_BF16_QUIET = np.uint32(0x40)
_BF16_HALF = np.uint32(0x7FFF)
_BF16_CHUNK = 1 << 16  # elements per pass: 256 KiB of float32, well inside L2


def _as_f32(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.ascontiguousarray(values, dtype=_F32)


def _as_bytes(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray(data, dtype=np.uint8)


# -- fp16 scales: the d / m fields of every block type -------------------------------------------


def fp16_bytes(values: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """GGML_FP32_TO_FP16 of float32 ``(n,)`` values as ``(n, 2)`` little-endian bytes.

    Magnitudes from 65520 up become ±inf, as in ggml; NumPy would warn about that overflow.
    """
    with np.errstate(over="ignore"):
        return values.astype(_F16).view(np.uint8).reshape(-1, 2)


def put_fp16(out: npt.NDArray[np.uint8], offset: int, values: npt.NDArray[np.float32]) -> None:
    """Store GGML_FP32_TO_FP16 of ``values`` ``(n,)`` at byte ``offset`` of each ``(n, size)`` row.

    Writing through a strided uint16 column is one long inner loop; assigning an ``(n, 2)`` byte
    slice would run NumPy's inner loop two bytes at a time.
    """
    column = out[:, offset : offset + 2].view(_U16)[:, 0]
    column[...] = fp16_bytes(values).view(_U16)[:, 0]


def fp16_values(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """GGML_FP16_TO_FP32 of ``(n, 2)`` little-endian bytes (any strides) as float32 ``(n,)``."""
    return _as_bytes(data).view(_F16).reshape(-1).astype(np.float32)


# -- the float tensor types ----------------------------------------------------------------------


def quantize_f32(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """float32 ``(n, 1)`` → ``(n, 4)`` bytes: the values themselves, little-endian."""
    return _as_f32(blocks).view(np.uint8).reshape(-1, 4)


def dequantize_f32(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """``(n, 4)`` bytes → float32 ``(n, 1)``."""
    return _as_bytes(data).view(_F32).reshape(-1, 1).astype(np.float32)


def quantize_f16(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """float32 ``(n, 1)`` → ``(n, 2)`` fp16 bytes, rounded to nearest even, overflow to ±inf."""
    return fp16_bytes(_as_f32(blocks).reshape(-1))


def dequantize_f16(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """``(n, 2)`` fp16 bytes → float32 ``(n, 1)`` (exact)."""
    return fp16_values(data).reshape(-1, 1)


def quantize_bf16(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """float32 ``(n, 1)`` → ``(n, 2)`` bf16 bytes as ggml_compute_fp32_to_bf16 rounds them.

    Integer arithmetic on the bit pattern, so no float rounding mode or flush-to-zero is involved;
    the addition cannot wrap because NaNs, the only patterns near 2**32, are redone afterwards.
    Runs in cache-sized chunks with in-place operations: one pass over memory instead of five.
    """
    values = _as_f32(blocks).reshape(-1)
    bits = values.view(_U32)
    out = np.empty(bits.shape, dtype=_U16)
    for start in range(0, bits.size, _BF16_CHUNK):
        chunk = bits[start : start + _BF16_CHUNK]
        rounded = chunk >> 16
        rounded &= 1
        rounded += _BF16_HALF
        rounded += chunk
        rounded >>= 16
        is_nan = np.isnan(values[start : start + _BF16_CHUNK])
        if is_nan.any():
            rounded[is_nan] = (chunk[is_nan] >> 16) | _BF16_QUIET
        out[start : start + _BF16_CHUNK] = rounded
    return out.view(np.uint8).reshape(-1, 2)


def dequantize_bf16(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """``(n, 2)`` bf16 bytes → float32 ``(n, 1)``: the bits become the high half (exact)."""
    widened = _as_bytes(data).view(_U16).reshape(-1).astype(_U32) << 16
    return widened.view(_F32).astype(np.float32).reshape(-1, 1)
