"""Signed-scale group search shared by Q6_K, Q3_K, Q4_0 and Q5_0, vectorized across groups.

Mirrors ggml-quants.c ``make_qx_quants`` (rmse_type 1, with quant weights or without them:
w = x*x), which searches one signed scale per group; Q3_K's other search, ``make_q3_quants``,
is in kquant_q3.py.

Layout: every function here takes groups **element-major**, ``x[i, g]`` = element i of group g, so a
C loop ``s += f(x[i])`` becomes ``np.add.reduce(..., axis=0)``, which NumPy evaluates row after row,
i.e. in the same order and with the same float32 roundings as C; ``np.sum`` over a contiguous axis
would sum pairwise and change the last bits. All arithmetic keeps the C expression order
(``w*x[i]*l`` is ``(w*x)*l``) in float32 without fused multiply-add, as the x86-64 build does.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from qconv.quant.kquant import small_ufunc_buffers, sum_products
from qconv.quant.rounding import nearest_int

F32 = npt.NDArray[np.float32]

_ZERO = np.float32(0)
GROUP_MAX_EPS = np.float32(1e-15)  # ggml's GROUP_MAX_EPS: below this a group counts as all zero
# Chunk size is the main speed knob (numpy-kernels.md): ~512 super-blocks (8192 groups) keep the
# (16, groups) work arrays of the candidate search near L2 while amortizing per-call overhead.
CHUNK_BLOCKS = 512
_QX_STEPS = [s for s in range(-9, 10) if s != 0]  # make_qx_quants' 18 extra candidate scales
SAFE = np.float32(4194304.0)  # 2**22: below it np.rint is exactly nearest_int
_WORKSPACE = threading.local()  # make_qx_quants' reused arrays, one set per thread


def quantize_in_chunks(
    blocks: npt.ArrayLike,
    type_size: int,
    quantize_chunk: Callable[[F32], npt.NDArray[np.uint8]],
    chunk_blocks: int = CHUNK_BLOCKS,
) -> npt.NDArray[np.uint8]:
    """Run ``quantize_chunk`` over ``chunk_blocks`` super-blocks at a time into one output array.

    Floating-point warnings are silenced on purpose: for inf/NaN inputs and subnormal scales the
    kernels reproduce what C computes (see rounding.nearest_int), so overflow is expected there.
    """
    x = np.asarray(blocks, dtype=np.float32)
    out = np.empty((x.shape[0], type_size), dtype=np.uint8)
    with np.errstate(all="ignore"), small_ufunc_buffers():
        for start in range(0, x.shape[0], chunk_blocks):
            part = slice(start, start + chunk_blocks)
            out[part] = quantize_chunk(x[part])
    return out


def element_major(blocks: F32, group_size: int = 16) -> F32:
    """(n_blocks, 256) → contiguous (group_size, n_groups), groups ordered block by block."""
    return np.ascontiguousarray(blocks.reshape(-1, group_size).T)


def block_major(values: npt.NDArray[np.int8], n_blocks: int) -> npt.NDArray[np.uint8]:
    """Inverse of :func:`element_major` for the quant levels: (16, n_groups) → (n_blocks, 256)."""
    return np.ascontiguousarray(values.T).reshape(n_blocks, -1).view(np.uint8)


def first_absmax(x: F32) -> tuple[F32, F32]:
    """Per column: (amax, signed value of the first element with the largest |x|).

    C runs a strict ``>`` over the leading axis from amax = 0, so ties keep the earliest element,
    a NaN never becomes the maximum and a column without any |x| > 0 gives (0, 0). The same result
    without a per-row loop: the NaN-ignoring column maximum and minimum (fmax/fmin) give amax and,
    unless both signs reach it, its sign; only columns where +amax and -amax both occur need the
    earliest one, found by :func:`_earliest_absmax`.
    """
    hi: F32 = np.fmax.reduce(x, axis=0)
    lo: F32 = np.fmin.reduce(x, axis=0)
    neg = np.negative(lo)
    amax = np.fmax(np.fmax(hi, neg), _ZERO)  # fmax(NaN, 0) is 0: all-NaN columns
    signed = np.where(hi >= neg, hi, lo)
    tie = hi == neg
    tie &= amax > 0
    if tie.any():
        signed[tie] = _earliest_absmax(x[:, tie], amax[tie])
    return amax, np.where(amax > 0, signed, _ZERO)


def _earliest_absmax(x: F32, amax: F32) -> F32:
    """Per column, the first element with ``|x| == amax``: the largest reversed rank ``n - i``."""
    n = x.shape[0]
    ranks = np.arange(n, 0, -1, dtype=np.uint8 if n < 256 else np.int32).reshape(-1, 1)
    hits = (np.abs(x) == amax).view(np.uint8).reshape(n, -1) * ranks
    first = n - np.maximum.reduce(hits, axis=0, initial=1).astype(np.intp)
    earliest: F32 = x.reshape(n, -1)[first, np.arange(first.shape[0])].reshape(amax.shape)
    return earliest


def safe_max_of(amax: F32, signed: F32) -> tuple[npt.NDArray[np.bool_], F32]:
    """Mask of all-zero groups, and ``max`` with those replaced by 1 so no lane divides by 0."""
    zero = amax < GROUP_MAX_EPS
    return zero, np.where(zero, np.float32(1), signed)


def _levels(x: F32, iscale: F32, nmax: int, out: F32) -> F32:
    """``clamp(nearest_int(iscale*x), -nmax, nmax-1)`` as float32, for finite x.

    ``np.rint`` equals nearest_int because |iscale*x| <= nmax + 1 (|x| <= |max|). The search's
    candidates skip the clamp: see :func:`_clamp_free_inputs`; this is the general path.
    """
    np.multiply(x, iscale, out=out)
    np.rint(out, out=out)
    return np.clip(out, -nmax, nmax - 1, out=out)


def _clamp_free_inputs(y: F32, amax: F32, nmax: int, out: F32) -> list[F32] | None:
    """Per candidate, an array ``z`` with ``rint(z*iscale)`` equal to C's clamped level of ``y``.

    ``y`` is a chunk with each column's signed maximum positive (see make_qx_quants) and ``amax``
    that maximum, so ``iscale = -reach/amax``. The clamp binds only near the extremes: with
    ``u = y/amax``, y*iscale is about ``-u*reach``, so elements near +amax reach the floor -nmax
    and those near -amax the ceiling nmax-1 only where |u|*reach passes nmax -/+ 0.5. For a set
    of candidates there is a fraction ``f`` whose every reach lands f*reach strictly inside the
    rounding interval of the clamped level; moving every element beyond f*amax to exactly
    f*amax (one pass per bound) then gives each candidate its clamped level without a clamp,
    saving a pass per candidate. The sets: reach below nmax - 0.5 (no clamp can bind), up to
    nmax + 0.5 (only the ceiling), above (both). The 0.01-level margins dwarf float32 rounding of
    y*iscale. None when some interval is empty (nmax < 2), for the general path. ``out`` holds
    two arrays like ``y`` for the clipped copies.
    """
    kinds, fractions = _clamp_sets(nmax)
    if not fractions:
        return None
    ceiling1, ceiling2, floor2 = (np.float32(f) * amax for f in fractions)
    inputs = (
        y,
        np.maximum(y, np.negative(ceiling1), out=out[0]),
        np.minimum(np.maximum(y, np.negative(ceiling2), out=out[1]), floor2, out=out[1]),
    )
    return [inputs[kind] for kind in kinds]


@functools.lru_cache(maxsize=4)
def _clamp_sets(nmax: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Which set (0 none, 1 ceiling, 2 both) each candidate is in, and the fractions of max
    (ceiling of set 1, ceiling of set 2, floor of set 2) that :func:`_clamp_free_inputs` clips
    to; no fractions when an interval is empty."""
    reach = _reaches(nmax).astype(np.float64)
    kinds = np.where(reach < nmax - 0.51, 0, np.where(reach < nmax + 0.49, 1, 2))
    fractions = []
    for kind, level in ((1, nmax - 1), (2, nmax - 1), (2, nmax)):
        members = reach[kinds == kind]
        low, high = (level - 0.49) / members.min(), (level + 0.49) / members.max()
        if not 0 < low < high:
            return tuple(kinds.tolist()), ()
        fractions.append(float((low + high) / 2))
    return tuple(kinds.tolist()), tuple(fractions)


def _levels_any(x: F32, iscale: F32, nmax: int, out: F32) -> F32:
    """:func:`_levels` for groups holding inf or NaN, where np.rint's NaN is not C's level.

    ``0*inf`` (an inf max makes iscale 0) and NaN inputs give NaN, whose nearest_int is 0 in C;
    with finite quant weights that 0 keeps ``(w*L)*L`` at 0 where a NaN level would spread.
    """
    out[...] = np.clip(nearest_int(np.multiply(x, iscale, dtype=np.float32)), -nmax, nmax - 1)
    return out


def exact_levels(x: F32, iscale: F32, nmax: int) -> F32:
    """``clamp(nearest_int(iscale*x), -nmax, nmax-1)`` as float32, for any x (runs once).

    ``iscale`` is ``-k/max`` with k <= nmax + 1, so every finite product is at most about nmax + 1
    in magnitude and np.rint is nearest_int; a sum over the group that is not finite flags inf or
    NaN products, for which the exact emulation gives C's values (~3x slower).
    """
    v = np.multiply(x, iscale, dtype=np.float32)
    if np.isfinite(np.add.reduce(v, axis=0)).all():
        np.rint(v, out=v)
        return np.clip(v, -nmax, nmax - 1, out=v)  # scalar bounds: faster than two passes
    return np.clip(nearest_int(v), -nmax, nmax - 1).astype(np.float32)


def round_signed_levels(v: F32, nmax: int) -> npt.NDArray[np.int8]:
    """``nmax + MAX(-nmax, MIN(nmax-1, nearest_int(v)))`` as int8; ``v`` is used as scratch.

    The requantization step of Q3_K and Q6_K. np.rint equals nearest_int below 2**22 in
    magnitude, which one whole-array extremes check proves (NaN fails it); otherwise the exact
    emulation runs. About 0.4x the cost of always emulating.
    """
    if np.minimum.reduce(v, axis=None) > -SAFE and np.maximum.reduce(v, axis=None) < SAFE:
        np.rint(v, out=v)
        np.clip(v, -nmax, nmax - 1, out=v)
        return (v + np.float32(nmax)).astype(np.int8)
    return np.clip(nearest_int(v), -nmax, nmax - 1).astype(np.int8) + np.int8(nmax)


@functools.lru_cache(maxsize=2)
def _reaches(nmax: int) -> F32:
    """C's candidate numerators in its order: ``nmax``, then ``nmax + 0.1f*is`` for is = -9..9
    without 0, in float32 (iscale = -reach/max)."""
    reach = [np.float32(nmax) + np.float32(0.1) * np.float32(step) for step in _QX_STEPS]
    out = np.array([np.float32(nmax), *reach], dtype=np.float32)
    out.flags.writeable = False
    return out


def make_qx_quants(
    x: F32, nmax: int, weights: F32 | None = None
) -> tuple[F32, npt.NDArray[np.int8]]:
    """ggml ``make_qx_quants(n, nmax, x, L, rmse_type=1, qw)`` for every column of ``x`` (n, cols).

    ``weights`` is C's ``qw`` laid out like ``x``; None means C's NULL, which weighs each element
    by ``x*x``. Returns the per-group scale (usually negative) and the levels L in
    ``0..2*nmax-1``. Only each candidate's two sums are kept during the search; L is rebuilt once
    at the end from the winner's inverse scale.
    """
    reach = _reaches(nmax)
    rows, chunk, positive = _workspace((reach.shape[0], x.shape[1]), x.shape)
    amax, signed = first_absmax(x)
    zero, safe_max = safe_max_of(amax, signed)
    w = np.multiply(x, x, out=chunk[0]) if weights is None else weights
    wx = np.multiply(w, x, out=chunk[1])
    lev = chunk[2]
    # One pass decides whether the fast rounding is exact for every candidate (a non-finite
    # column sum flags inf or NaN; an overflowing sum only costs the slow path).
    finite = bool(np.isfinite(np.add.reduce(x, axis=0)).all())
    if finite:
        # Levels come from y = x*sign(max) and iscale = -reach/|max|: both sign flips are exact,
        # so y*iscale is C's x*iscale bit for bit, and every column's max is positive, which
        # makes the clamp-free inputs one-sided. (Sums still use x.)
        y = np.multiply(x, np.where(signed < 0, np.float32(-1), np.float32(1)), out=chunk[3])
        divisor = np.abs(safe_max)
        inputs = _clamp_free_inputs(y, divisor, nmax, chunk[4:])
    else:
        y, divisor, inputs = x, safe_max, None
    # Every candidate's sums go into rows of a reused workspace (fresh megabytes cost page
    # faults), row 0 C's first scale (reach nmax) and then its 18 others; C's acceptance test,
    # which depends on the running best, then runs on those rows with a few small operations per
    # candidate on the columns it changes.
    # C's -(nmax + 0.1f*is)/max, for y's columns (the same up to sign for x's)
    iscales = np.divide(-reach[:, None], divisor, out=rows[0])
    sumlx, suml2 = rows[1], rows[2]
    for k in range(reach.shape[0]):
        if inputs is not None:
            cand_levels = np.rint(np.multiply(inputs[k], iscales[k], out=lev), out=lev)
        elif finite:
            cand_levels = _levels(y, iscales[k], nmax, lev)
        else:
            cand_levels = _levels_any(y, iscales[k], nmax, lev)
        sum_products(wx, cand_levels, out=sumlx[k])
        sum_products(w, cand_levels, cand_levels, out=suml2[k])
    # C accepts a candidate only if suml2 > 0: there -inf squares make one comparison decide.
    squares = np.multiply(sumlx, sumlx, out=rows[3])
    np.greater(suml2, 0, out=positive)
    if not positive.all():
        np.copyto(squares, -np.inf, where=~positive)
    scale = np.divide(sumlx[0], suml2[0])
    np.copyto(scale, _ZERO, where=suml2[0] == 0)  # C: suml2 ? sumlx/suml2 : 0
    best = np.multiply(scale, sumlx[0])  # C's best = scale*sumlx
    best_iscale = iscales[0].copy()
    product, better = np.empty_like(best), np.empty(best.shape, dtype=np.bool_)
    for k in range(1, reach.shape[0]):
        np.greater(squares[k], np.multiply(best, suml2[k], out=product), out=better)
        # About 1.2 wins per column over all candidates: indexed updates of the winners beat
        # masked whole-vector ones (np.where, copyto) at ~4 ns per column.
        won = np.flatnonzero(better)
        gained = sumlx[k, won]
        won_scale = gained / suml2[k, won]
        scale[won] = won_scale
        best[won] = won_scale * gained
        best_iscale[won] = iscales[k, won]
    levels = _final_levels(y, best_iscale, nmax, finite, lev)
    levels[:, zero] = 0
    return np.where(zero, np.float32(0), scale), levels


def _final_levels(
    x: F32, iscale: F32, nmax: int, finite: bool, scratch: F32
) -> npt.NDArray[np.int8]:
    """``nmax + clamp(nearest_int(iscale*x), -nmax, nmax-1)`` as int8 for the winning scales."""
    if not finite:
        return exact_levels(x, iscale, nmax).astype(np.int8) + np.int8(nmax)
    v = np.multiply(x, iscale, out=scratch)  # |v| <= nmax + 1: np.rint is nearest_int
    np.rint(v, out=v)
    np.clip(v, -nmax, nmax - 1, out=v)
    return np.add(v, np.float32(nmax), out=v).astype(np.int8)


def _workspace(
    rows_shape: tuple[int, int], chunk_shape: tuple[int, int]
) -> tuple[F32, F32, npt.NDArray[np.bool_]]:
    """make_qx_quants' scratch, reused per thread: four float32 arrays of ``rows_shape`` (per
    candidate and column), six of ``chunk_shape`` (like x) and one bool array of ``rows_shape``.

    Fresh megabytes cost page faults, which on this kind of machine take as long as the
    arithmetic on them. Nothing returned from make_qx_quants points into the scratch.
    """
    rows_size, chunk_size = rows_shape[0] * rows_shape[1], chunk_shape[0] * chunk_shape[1]
    need = 4 * rows_size + 6 * chunk_size
    floats: F32 | None = getattr(_WORKSPACE, "floats", None)
    if floats is None or floats.size < need:
        floats = _WORKSPACE.floats = np.empty(need, dtype=np.float32)
        _WORKSPACE.flags = np.empty(rows_size, dtype=np.bool_)
    flags: npt.NDArray[np.bool_] = _WORKSPACE.flags
    rows = floats[: 4 * rows_size].reshape(4, *rows_shape)
    chunk = floats[4 * rows_size : need].reshape(6, *chunk_shape)
    return rows, chunk, flags[:rows_size].reshape(rows_shape)
