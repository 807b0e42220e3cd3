"""What the K-quant kernels share when llama-quantize hands ggml an importance matrix.

With quant weights ggml-quants.c runs each type's ``quantize_row_<type>_impl`` instead of its
``_ref``: per-element weights ``w = qw * sqrtf(sigma2 + x*x)`` (``sigma2`` from the super-block's
sum of squares), ``make_qkx3_quants`` for the sub-block scales and mins (the same arithmetic as
``make_qkx2_quants`` with squared error, so kquant_search.make_qkx2_quants runs it) and
``make_qp_quants`` to fit the super-block's 4- or 6-bit scale and min codes. This module holds the
row driver that lines the imatrix up with each chunk of super-blocks, the super-block sums,
``make_qp_quants`` and the Q4_K/Q5_K body.

Layout as in kquant.py: element-major arrays ``(n, n_groups)``, one column per group, so C's
sequential float32 sums become in-order reductions over axis 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from qconv.errors import QuantizationError
from qconv.quant.kquant import (
    fp16_bits,
    fp16_to_f32,
    small_ufunc_buffers,
    sum_products,
    u16_bytes,
)
from qconv.quant.kquant_k4 import pack_scale_min_k4, requantize_blocks, unpack_scale_min_k4
from qconv.quant.kquant_search import make_qkx2_quants
from qconv.quant.rounding import nearest_int

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
ChunkFunction = Callable[[F32, F32], U8]

QK_K = 256
GROUP_MAX_EPS = np.float32(1e-15)  # ggml's GROUP_MAX_EPS
_ZERO = np.float32(0)
_QP_STEPS = [s for s in range(-4, 5) if s != 0]  # make_qp_quants' 8 extra candidate scales
_QP_PASSES = 5  # make_qp_quants: at most 5 refinement passes


def quantize_rows_weighted(
    rows: F32,
    imatrix: F32,
    type_size: int,
    group_size: int,
    chunk_blocks: int,
    quantize_chunk: ChunkFunction,
    *,
    refuse_nan: bool,
) -> U8:
    """Run ``quantize_chunk(blocks, qw)`` over chunks of super-blocks of ``rows``.

    ``qw`` is the imatrix laid out like the chunk's element-major groups of ``group_size``:
    ``qw[i, g]`` weighs element i of group g, whichever row the group's block comes from (ggml
    reads ``quant_weights + QK_K*i`` for block i of every row). Returns ``(n_rows, row_nbytes)``.

    Raises:
        QuantizationError: ``refuse_nan`` and the rows hold NaN (see kquant.quantize_in_chunks
            for why those kernels cannot promise ggml's bytes for it).
    """
    n_rows, n_cols = rows.shape
    blocks = np.ascontiguousarray(rows, dtype=np.float32).reshape(-1, QK_K)
    groups_per_row = n_cols // group_size
    groups_per_block = QK_K // group_size
    weights = np.ascontiguousarray(
        np.asarray(imatrix, dtype=np.float32).reshape(groups_per_row, group_size).T
    )
    out = np.empty((blocks.shape[0], type_size), dtype=np.uint8)
    # Chunks that start at the same column of a row get the same qw: when chunk_blocks spans
    # whole rows, every full chunk shares one (the gather costs ~2 ns per element otherwise).
    qw_key, qw = (-1, -1), weights
    with np.errstate(all="ignore"), small_ufunc_buffers():
        for start in range(0, blocks.shape[0], chunk_blocks):
            part = blocks[start : start + chunk_blocks]
            if refuse_nan and np.isnan(part).any():
                raise QuantizationError(
                    "cannot quantize NaN values: ggml's output for NaN is undefined, so clean the "
                    "tensor or keep it as F16/F32"
                )
            key = ((start * groups_per_block) % groups_per_row, part.shape[0] * groups_per_block)
            if key != qw_key:
                columns = (np.arange(key[1]) + key[0]) % groups_per_row
                qw_key, qw = key, np.take(weights, columns, 1)
                qw.flags.writeable = False  # shared by chunks: the kernels only read it
            out[start : start + chunk_blocks] = quantize_chunk(part, qw)
    return out.reshape(n_rows, n_cols // QK_K * type_size)  # explicit: n_rows may be 0


def superblock_sum_x2(blocks: F32) -> F32:
    """C's ``float s = 0; for (j < QK_K) s += x[j]*x[j];`` per super-block, in element order."""
    by_element = np.ascontiguousarray(blocks.T)
    return sum_products(by_element, by_element, out=np.empty(blocks.shape[0], dtype=np.float32))


def impl_weights(x: F32, qw: F32, sigma2: F32) -> F32:
    """``qw[l] * sqrtf(sigma2 + x[l]*x[l])`` for element-major ``x``; ``sigma2`` per super-block."""
    per_group = np.repeat(sigma2, x.shape[1] // sigma2.shape[0])
    w = np.multiply(x, x)
    np.add(per_group, w, out=w)
    np.sqrt(w, out=w)
    return np.multiply(qw, w, out=w)


def group_sums(w: F32) -> F32:
    """C's ``float s = 0; for (l...) s += w[l];`` per column (the +0.0 start turns -0.0 into 0)."""
    sums: F32 = np.add.reduce(w, axis=0) + _ZERO
    return sums


def _sequential_max(x: F32) -> F32:
    """C's ``max = 0; for (i...) max = MAX(max, x[i]);`` per column, ``MAX(a,b) = a > b ? a : b``.

    Written as a loop over the (few) rows because a NaN does not stick as in np.maximum: once the
    running max is NaN, the next element replaces it.
    """
    top = np.zeros(x.shape[1], dtype=np.float32)
    for row in x:
        top = np.where(top > row, top, row)
    return top


def make_qp_quants(x: F32, nmax: int, qw: F32) -> tuple[F32, U8]:
    """ggml ``make_qp_quants(n, nmax, x, L, quant_weights)`` for every column of ``x`` (n, cols).

    Fits one positive scale per column to non-negative ``x`` (the sub-block scales or mins of a
    super-block): 9 candidate inverse scales by weighted squared error, then up to 5 passes of
    coordinate refinement, each level in turn, accepted when it raises sumlx²/suml2. Returns the
    scale and the uint8 levels (C stores them in ``uint8_t``, so a negative level wraps, and the
    refinement then reads the wrapped value; mirrored here). n is 8 or 16, so the sequential
    refinement loops over positions and vectorizes across columns.
    """
    top = _sequential_max(x)
    zero = top < GROUP_MAX_EPS
    safe_top: F32 = np.where(zero, np.float32(1), top)
    fnmax = np.float32(nmax)
    iscale: F32 = fnmax / safe_top
    stored = (nearest_int(iscale * x) & 0xFF).astype(np.float32)
    scale = np.float32(1) / iscale
    diff = x - scale * stored
    best = sum_products(qw, diff, diff, out=np.empty(x.shape[1], dtype=np.float32))
    cap = np.full(x.shape, nmax, dtype=np.int32)
    mse = np.empty_like(best)
    for step in _QP_STEPS:
        cand: F32 = (np.float32(0.1) * np.float32(step) + fnmax) / safe_top
        levels = np.minimum(nearest_int(cand * x), cap).astype(np.float32)
        diff = x - (np.float32(1) / cand) * levels
        sum_products(qw, diff, diff, out=mse)
        better = mse < best
        best = np.where(better, mse, best)
        iscale = np.where(better, cand, iscale)
    levels_int = np.minimum(nearest_int(iscale * x), cap)
    levels = levels_int.astype(np.float32)
    sumlx = sum_products(qw, x, levels, out=np.empty_like(best))
    suml2 = sum_products(qw, levels, levels, out=np.empty_like(best))
    stored = (levels_int & 0xFF).astype(np.float32)
    _refine_qp(x, qw, stored, sumlx, suml2, nmax, ~zero)
    out_scale = np.where((suml2 > 0) & ~zero, sumlx / suml2, _ZERO).astype(np.float32)
    out_levels = stored.astype(np.uint8)
    out_levels[:, zero] = 0
    return out_scale, out_levels


def make_qp_pair(scale: F32, the_min: F32, nmax: int, sw: F32) -> tuple[F32, U8, F32, U8]:
    """make_qp_quants for a chunk's sub-block scales and for its mins, as one call.

    ``scale`` and ``the_min`` are per sub-block, block after block (n_blocks * groups,), ``sw``
    the sub-block weight sums ``(groups, n_blocks)``. Columns are independent, so the two fits
    run side by side: the refinement makes ~20 calls per round whatever the column count, and
    one call instead of two halves that cost. Returns ``(d, scale codes, dmin, min codes)``, the
    codes ``(groups, n_blocks)``.
    """
    n_blocks = sw.shape[1]
    both = np.concatenate([scale.reshape(n_blocks, -1), the_min.reshape(n_blocks, -1)]).T
    d, codes = make_qp_quants(np.ascontiguousarray(both), nmax, np.concatenate([sw, sw], axis=1))
    return d[:n_blocks], codes[:, :n_blocks], d[n_blocks:], codes[:, n_blocks:]


def _refine_qp(
    x: F32, qw: F32, stored: F32, sumlx: F32, suml2: F32, nmax: int, active: npt.NDArray[np.bool_]
) -> None:
    """make_qp_quants' refinement passes, in place on ``stored``, ``sumlx`` and ``suml2``.

    C visits the positions in order, and an accepted level changes the sums the next test uses;
    but acceptances are rare, so each round tests every position of every column still refining
    from its current sums, which is exactly what C computes up to the first position it accepts.
    That first acceptance, from the column's cursor on in this pass or else in its next pass
    (which C runs only after a pass with changes, at most 5 passes), is applied; a column without
    one is done. The same scheme as kquant_qx.make_q3_quants.
    """
    n = x.shape[0]
    cols = np.flatnonzero(active)
    xs, ws, lv = x[:, cols], qw[:, cols], stored[:, cols]
    slx_all, sl2_all = sumlx[cols], suml2[cols]
    cursor = np.zeros(cols.size, dtype=np.intp)
    passes = np.zeros(cols.size, dtype=np.intp)
    changed = np.zeros(cols.size, dtype=np.bool_)
    position = np.arange(n)[:, None]
    while cols.size:
        wx = ws * xs
        slx = slx_all - wx * lv
        sl2 = sl2_all - (ws * lv) * lv
        tried = (slx > 0) & (sl2 > 0)
        ratio: F32 = np.divide(np.multiply(xs, sl2), slx)
        new = np.minimum(nearest_int(ratio), np.int32(nmax)).astype(np.float32)
        tried &= new != lv
        slx += wx * new
        sl2 += (ws * new) * new
        tried &= (slx * slx) * sl2_all > (slx_all * slx_all) * sl2  # C's order of products
        later = position < cursor
        tried &= ~later | (changed & (passes < _QP_PASSES - 1))
        order = np.where(tried, position + n * later, 2 * n)
        first = np.minimum.reduce(order, axis=0)
        found = np.flatnonzero(first < 2 * n)
        at = first[found] % n
        lv[at, found] = (new[at, found].astype(np.int32) & 0xFF).astype(np.float32)
        slx_all[found], sl2_all[found] = slx[at, found], sl2[at, found]
        passes[found] += first[found] >= n
        changed[found] = True
        cursor[found] = at + 1
        done = first == 2 * n
        finished = cols[done]
        stored[:, finished] = lv[:, done]
        sumlx[finished], suml2[finished] = slx_all[done], sl2_all[done]
        cols, xs, ws, lv = cols[found], xs[:, found], ws[:, found], lv[:, found]
        slx_all, sl2_all = slx_all[found], sl2_all[found]
        cursor, passes, changed = cursor[found], passes[found], changed[found]


def quantize_k4_weighted(blocks: F32, qw: F32, nmax: int, clamp_codes: bool) -> tuple[U8, U8]:
    """Q4_K / Q5_K ``quantize_row_q*_K_impl`` on (n_blocks, 256), up to packing the levels.

    ``qw`` is the imatrix in the element-major layout of 32-element sub-blocks. Q5_K clamps the
    6-bit codes to 63 (``clamp_codes``), Q4_K stores them as they come. Returns ``(head, levels)``
    like kquant_k4.quantize_k4_superblocks: d|dmin|scales bytes and uint8 levels (n_blocks, 256).
    """
    n_blocks = blocks.shape[0]
    x = np.ascontiguousarray(blocks.reshape(-1, 32).T)
    sigma2 = (np.float32(2) * superblock_sum_x2(blocks)) / np.float32(QK_K)
    w = impl_weights(x, qw, sigma2)
    sw = group_sums(w).reshape(n_blocks, 8)
    levels, scale, the_min = make_qkx2_quants(x, w, nmax, -0.9, 0.05, 36, use_mad=False)
    sw_t = np.ascontiguousarray(sw.T)
    d_block, ls, m_block, lm = make_qp_pair(scale, the_min, 63, sw_t)
    ls, lm = ls.T, lm.T
    if clamp_codes:
        ls, lm = np.minimum(ls, np.uint8(63)), np.minimum(lm, np.uint8(63))
    packed = pack_scale_min_k4(np.ascontiguousarray(ls), np.ascontiguousarray(lm))
    d_bits, dmin_bits = fp16_bits(d_block), fp16_bits(m_block)
    sc, m = unpack_scale_min_k4(packed)  # C requantizes with the codes read back from the bytes
    dj = (fp16_to_f32(d_bits)[:, None] * sc.astype(np.float32)).reshape(-1)
    dm = (fp16_to_f32(dmin_bits)[:, None] * m.astype(np.float32)).reshape(-1)
    levels_u8 = requantize_blocks(x, levels, dj, dm, nmax, blocks.reshape(-1, 32))
    head: U8 = np.concatenate([u16_bytes(d_bits), u16_bytes(dmin_bits), packed], axis=1)
    return head, levels_u8.reshape(n_blocks, QK_K)
