"""IQ4_XS: 256 weights as IQ4_NL's grid indices with 6-bit sub-block scales (136 bytes).

Mirrors ggml-quants.c ``quantize_iq4_xs`` (``quantize_row_iq4_nl_impl`` with super-blocks of 256,
blocks of 32, ntry = 7) and ``dequantize_row_iq4_xs``::

    byte  0    1    2    3    4 .. 7          8 .. 23    24 .. 39   ...  120 .. 135
        [ d (fp16) ][ scales_h ][ scales_l[4] ][ qs, block 0 ][ block 1 ]  ...  [ block 7 ]
    ls_ib = (scales_l[ib/2] >> 4*(ib%2) & 15) | (scales_h >> 2*ib & 3) << 4     ib = 0..7, 0..63
    qs of block ib: q[j] | q[j + 16] << 4, as IQ4_NL
    x[32*ib + j] ≈ d * (ls_ib - 32) * kvalues_iq4nl[q[j]]     (two float32 products)

Quantization: every block of 32 searches its own scale as IQ4_NL does (iq4_nl.search_scales; with
an importance matrix sigma2 = 2 Σ x² / 256 over the super-block), then ``d = -max_scale/32`` where
``max_scale`` is the first block scale of largest magnitude, ``ls = clamp(nearest_int(scale/d),
-32, 31) + 32``, and each block's indices are recomputed with ``1/(d*(ls - 32))``.
ggml's ``quantize_row_iq4_xs_ref`` is the same function without weights.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from qconv.gguf.constants import QK_K, QUANT_SIZES, GGMLType
from qconv.quant import weighted
from qconv.quant.float import fp16_values, put_fp16
from qconv.quant.iq4_nl import best_index, quantize_super_blocks, search_scales
from qconv.quant.kquant_qx import first_absmax
from qconv.quant.q4_0 import byte_blocks, pack_nibbles, unpack_nibbles
from qconv.quant.rounding import nearest_int

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
_GRID = np.array(
    [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], dtype=np.float32
)
_TYPE_SIZE = QUANT_SIZES[GGMLType.IQ4_XS][1]
_SUB = QK_K // 32  # blocks of 32 per super-block
CHUNK_BLOCKS = 512  # super-blocks per chunk: 4096 blocks of 32 in the search, as for IQ4_NL
_SHIFTS = (2 * np.arange(_SUB)).astype(np.uint16)
_ONE = np.float32(1)


def _inverse(v: F32) -> F32:
    """C's ``v ? 1/v : 0``."""
    inv = np.zeros_like(v)
    np.divide(_ONE, v, out=inv, where=v != 0)
    return inv


def _pack_scales(ls: npt.NDArray[np.int32], out: U8) -> None:
    """``ls`` (n, 8) in 0..63 → scales_h (uint16 LE, bytes 2..3) and scales_l (bytes 4..7)."""
    high = ((ls >> 4).astype(np.uint16) << _SHIFTS).sum(axis=1, dtype=np.uint16)
    out[:, 2:4].view("<u2")[:, 0] = high
    low = (ls & 15).astype(np.uint8)
    out[:, 4:8] = low[:, 0::2] | (low[:, 1::2] << 4)


def _quantize_chunk(blocks: F32, weights: F32) -> U8:
    n = blocks.shape[0]
    x = weighted.element_major(blocks.reshape(-1, 32))
    scales = search_scales(x, weighted.element_major(weights.reshape(-1, 32)))[: n * _SUB]
    _, max_scale = first_absmax(np.ascontiguousarray(scales.reshape(n, _SUB).T))
    d = np.divide(np.negative(max_scale), np.float32(32), dtype=np.float32)
    ls = np.clip(nearest_int(_inverse(d)[:, None] * scales.reshape(n, _SUB)), -32, 31)
    dl = d[:, None] * ls.astype(np.float32)
    idl = _inverse(dl).reshape(-1)
    idl = np.pad(idl, (0, x.shape[1] - idl.shape[0]))
    codes = best_index(np.multiply(x, idl, dtype=np.float32))
    out = np.empty((n, _TYPE_SIZE), dtype=np.uint8)
    put_fp16(out, 0, d)
    _pack_scales(ls + 32, out)
    qs = np.empty((n * _SUB, 16), dtype=np.uint8)
    pack_nibbles(np.ascontiguousarray(codes[:, : n * _SUB].T), qs)
    out[:, 8:] = qs.reshape(n, -1)
    return out


def quantize_blocks(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """float32 ``(n_blocks, 256)`` → ``(n_blocks, 136)`` IQ4_XS, as quantize_iq4_xs without weights.

    Raises:
        QuantizationError: the blocks hold NaN or ±inf.
    """
    return quantize_super_blocks(blocks, None, QK_K, _TYPE_SIZE, CHUNK_BLOCKS, _quantize_chunk)


def quantize_rows_imatrix(
    rows: npt.NDArray[np.float32], imatrix: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    """float32 ``(n_rows, n_cols)`` with per-column weights → IQ4_XS rows, as quantize_iq4_xs.

    Raises:
        QuantizationError: the rows hold NaN or ±inf.
    """
    packed = quantize_super_blocks(rows, imatrix, QK_K, _TYPE_SIZE, CHUNK_BLOCKS, _quantize_chunk)
    return packed.reshape(rows.shape[0], rows.shape[1] // QK_K * _TYPE_SIZE)  # 0 rows too


def dequantize_blocks(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """``(n_blocks, 136)`` IQ4_XS bytes → float32 ``(n_blocks, 256)``, as dequantize_row_iq4_xs.

    Raises:
        QuantizationError: ``data`` is not ``(n_blocks, 136)``.
    """
    data = byte_blocks(data, _TYPE_SIZE)
    n = data.shape[0]
    d = fp16_values(data[:, :2])
    high = data[:, 2:4].copy().view("<u2")[:, :1] >> _SHIFTS & 3
    low = np.stack([data[:, 4:8] & 15, data[:, 4:8] >> 4], axis=-1).reshape(n, _SUB)
    ls = (low | (high << 4)).astype(np.int32) - 32
    values: F32 = _GRID[unpack_nibbles(np.ascontiguousarray(data[:, 8:]).reshape(-1, 16))]
    with np.errstate(invalid="ignore", over="ignore"):  # inf/NaN d decode to inf/NaN, as in C
        dl = d[:, None] * ls.astype(np.float32)
        values *= dl.reshape(-1, 1)
    return values.reshape(n, QK_K)
