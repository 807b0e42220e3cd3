"""Q4_K / Q5_K / Q2_K super-blocks: 6-bit scale and min packing, the per-super-block scale search
and requantization, and decoding.

Mirrors ggml-quants.c ``get_scale_min_k4`` (and its inverse, written inline in
``quantize_row_q4_K_ref`` / ``_q5_K_ref``) and ``dequantize_row_q4_K`` / ``_q5_K``; the search
itself (``make_qkx2_quants``) is in qconv.quant.kquant_search, the element-major helpers in
qconv.quant.kquant.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from qconv.quant.kquant import (
    F32,
    U8,
    fp16_bits,
    fp16_to_f32,
    max_positive,
    round_levels,
    u16_bytes,
)
from qconv.quant.kquant_search import make_qkx2_quants
from qconv.quant.rounding import nearest_int

_ZERO = np.float32(0.0)


def pack_scale_min_k4(sc: U8, m: U8) -> U8:
    """(n_blocks, 8) 6-bit scales and mins → (n_blocks, 12) bytes, as quantize_row_q4_K_ref does."""
    out = np.empty((sc.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = sc[:, :4] | ((sc[:, 4:] >> 4) << 6)
    out[:, 4:8] = m[:, :4] | ((m[:, 4:] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:] & 0xF) | ((m[:, 4:] & 0xF) << 4)
    return out


def unpack_scale_min_k4(scales: U8) -> tuple[U8, U8]:
    """ggml-quants.c ``get_scale_min_k4`` for 8 sub-blocks: (n_blocks, 12) → sc, m (n_blocks, 8)."""
    sc = np.empty((scales.shape[0], 8), dtype=np.uint8)
    m = np.empty_like(sc)
    sc[:, :4] = scales[:, 0:4] & 63
    m[:, :4] = scales[:, 4:8] & 63
    sc[:, 4:] = (scales[:, 8:12] & 0xF) | ((scales[:, 0:4] >> 6) << 4)
    m[:, 4:] = (scales[:, 8:12] >> 4) | ((scales[:, 4:8] >> 6) << 4)
    return sc, m


def wrap_u8(v: npt.NDArray[np.int32]) -> U8:
    """C's implicit int → uint8_t conversion: keep the low 8 bits (−1 becomes 255)."""
    return (v & 0xFF).astype(np.uint8)


def quantize_k4_superblocks(blocks: F32, nmax: int, rmin: float, nstep: int) -> tuple[U8, U8]:
    """The Q4_K/Q5_K super-block pipeline on float32 (n_blocks, 256), up to packing the levels.

    Mirrors the shared body of ``quantize_row_q4_K_ref`` and ``_q5_K_ref``: per 32-element
    sub-block weights ``av_x + |x|`` and make_qkx2_quants, 6-bit scales/mins against the block
    maxima (cast to uint8 *before* MIN(63)), fp16 d/dmin, then requantization by division.
    Returns ``(head, levels)``: the 16 bytes d|dmin|scales and uint8 levels (n_blocks, 256).
    """
    n_blocks = blocks.shape[0]
    x = np.ascontiguousarray(blocks.reshape(-1, 32).T)  # element-major (32, n_sub)
    sum_x2 = np.add.reduce(x * x, axis=0)
    av_x = np.sqrt(sum_x2 / np.float32(32))
    w = av_x + np.abs(x)
    levels, scale, the_min = make_qkx2_quants(x, w, nmax, rmin, 0.1, nstep, use_mad=False)
    scale = scale.reshape(n_blocks, 8)
    the_min = the_min.reshape(n_blocks, 8)
    max_scale = max_positive(scale)[:, None]
    max_min = max_positive(the_min)[:, None]
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        inv_scale = np.where(max_scale > 0, np.float32(63.0) / max_scale, _ZERO)
        inv_min = np.where(max_min > 0, np.float32(63.0) / max_min, _ZERO)
        ls = np.minimum(wrap_u8(nearest_int((inv_scale * scale).astype(np.float32))), 63)
        lm = np.minimum(wrap_u8(nearest_int((inv_min * the_min).astype(np.float32))), 63)
    d_bits = fp16_bits(max_scale[:, 0] / np.float32(63.0))
    dmin_bits = fp16_bits(max_min[:, 0] / np.float32(63.0))
    packed = pack_scale_min_k4(ls.astype(np.uint8), lm.astype(np.uint8))
    dj = (fp16_to_f32(d_bits)[:, None] * ls.astype(np.float32)).reshape(-1)
    dm = (fp16_to_f32(dmin_bits)[:, None] * lm.astype(np.float32)).reshape(-1)
    levels_u8 = requantize_blocks(x, levels, dj, dm, nmax, blocks.reshape(-1, 32))
    head: U8 = np.concatenate([u16_bytes(d_bits), u16_bytes(dmin_bits), packed], axis=1)
    return head, levels_u8.reshape(n_blocks, 256)


def requantize(x: F32, levels: F32, dj: F32, dm: F32, nmax: int) -> F32:
    """``L = clamp(nearest_int((x + dm) / dj), 0, nmax)`` per column of element-major ``x``.

    The K-quants' final pass against the stored (fp16 × integer) scales. It divides, as C does,
    and keeps the search's levels where ``dj == 0`` (C's ``if (!d) continue``; a NaN dj is not 0).
    """
    keep = dj == 0
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        safe_dj = np.where(keep, np.float32(1.0), dj)
        v = np.add(x, dm)
        np.divide(v, safe_dj, out=v)
        lo = (np.minimum.reduce(x, axis=0) + dm) / safe_dj
        hi = (np.maximum.reduce(x, axis=0) + dm) / safe_dj
        fresh = round_levels(v, nmax, lo, hi)
    return np.where(keep, levels, fresh)


def requantize_blocks(x: F32, levels: F32, dj: F32, dm: F32, nmax: int, groups: F32) -> U8:
    """:func:`requantize`, returned as uint8 in the blocks' own layout (one row per sub-block).

    ``groups`` holds the same values as ``x`` laid out block-major, ``(n_sub, n)``: dividing there
    gives the levels in output order, where transposing them back costs ~14x a contiguous cast.
    The per-column bounds still come from the element-major ``x`` (fast reductions).
    """
    keep = dj == 0
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        safe_dj = np.where(keep, np.float32(1.0), dj)
        v = np.add(groups, dm[:, None])
        np.divide(v, safe_dj[:, None], out=v)
        lo = (np.minimum.reduce(x, axis=0) + dm) / safe_dj
        hi = (np.maximum.reduce(x, axis=0) + dm) / safe_dj
        fresh = round_levels(v, nmax, lo, hi)
    if keep.any():
        fresh = np.where(keep[:, None], levels.T, fresh)
    return fresh.astype(np.uint8)


def k4_scales_f32(data: U8) -> tuple[F32, F32]:
    """Per-sub-block ``d*sc_j`` and ``dmin*m_j`` of Q4_K/Q5_K bytes, shaped (n_blocks, 8, 1)."""
    d = fp16_to_f32(data[:, 0:2].copy().view("<u2")[:, 0])
    dmin = fp16_to_f32(data[:, 2:4].copy().view("<u2")[:, 0])
    sc, m = unpack_scale_min_k4(data[:, 4:16])
    with np.errstate(invalid="ignore"):  # an inf fp16 d times a 0 scale is NaN, as in C
        scale = (d[:, None] * sc.astype(np.float32))[:, :, None]
        offset = (dmin[:, None] * m.astype(np.float32))[:, :, None]
    return scale, offset


def dequantize_k4(data: U8, qs_offset: int, qh_offset: int | None = None) -> F32:
    """Decode Q4_K (``qh_offset`` None) or Q5_K bytes: ``(d*sc_j)*q - dmin*m_j`` per sub-block.

    ``qs[32c+l]`` holds levels 64c+l (low nibble) and 64c+32+l (high nibble); Q5_K adds bit 4 of
    sub-block j's element l from ``qh[l]`` bit j.
    """
    data = np.ascontiguousarray(data, dtype=np.uint8)
    scale, offset = k4_scales_f32(data)
    qs = data[:, qs_offset : qs_offset + 128].reshape(-1, 4, 1, 32)
    levels = np.concatenate([qs & 0xF, qs >> 4], axis=2).reshape(-1, 8, 32)
    if qh_offset is not None:
        qh = data[:, None, qh_offset : qh_offset + 32]
        levels |= ((qh >> np.arange(8, dtype=np.uint8)[None, :, None]) & 1) << 4
    with np.errstate(invalid="ignore", over="ignore"):  # inf d times level 0 is NaN in C too
        values: F32 = (scale * levels.astype(np.float32) - offset).reshape(-1, 256)
    return values
