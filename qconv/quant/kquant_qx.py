"""Signed-scale group quantizers shared by Q6_K and Q3_K, vectorized across groups.

Mirrors ggml-quants.c ``make_qx_quants`` (rmse_type 1, no importance weights: w = x*x) and
``make_q3_quants`` (do_rmse = true). Both search one signed scale per 16-element group.

Layout: every function here takes groups **element-major**, ``x[i, g]`` = element i of group g, so a
C loop ``s += f(x[i])`` becomes ``np.add.reduce(..., axis=0)``, which NumPy evaluates row after row,
i.e. in the same order and with the same float32 roundings as C; ``np.sum`` over a contiguous axis
would sum pairwise and change the last bits. All arithmetic keeps the C expression order
(``w*x[i]*l`` is ``(w*x)*l``) in float32 without fused multiply-add, as the x86-64 build does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from qconv.quant.kquant import last_taken, small_ufunc_buffers, sum_products
from qconv.quant.rounding import nearest_int

F32 = npt.NDArray[np.float32]

_ZERO = np.float32(0)
GROUP_MAX_EPS = np.float32(1e-15)  # ggml's GROUP_MAX_EPS: below this a group counts as all zero
# Chunk size is the main speed knob (numpy-kernels.md): ~512 super-blocks (8192 groups) keep the
# (16, groups) work arrays of the candidate search near L2 while amortizing per-call overhead.
CHUNK_BLOCKS = 512
_QX_STEPS = [s for s in range(-9, 10) if s != 0]  # make_qx_quants' 18 extra candidate scales
_Q3_PASSES = 5  # make_q3_quants: at most 5 refinement passes per group


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
    without a per-row loop: amax is the NaN-ignoring maximum (fmax), and the first row holding it
    is found as the largest of the reversed row ranks ``n - i`` where ``|x| == amax``.
    """
    ax = np.abs(x)
    amax = np.fmax(np.fmax.reduce(ax, axis=0), _ZERO)  # fmax(NaN, 0) is 0: all-NaN columns
    n = x.shape[0]
    ranks = np.arange(n, 0, -1, dtype=np.uint8 if n < 256 else np.int32).reshape(-1, 1)
    hits = (ax == amax).view(np.uint8).reshape(n, -1) * ranks
    first = n - np.maximum.reduce(hits, axis=0, initial=1).astype(np.intp)
    signed = x.reshape(n, -1)[first, np.arange(first.shape[0])].reshape(amax.shape)
    return amax, np.where(amax > 0, signed, _ZERO)


def _safe_max(amax: F32, signed: F32) -> tuple[npt.NDArray[np.bool_], F32]:
    """Mask of all-zero groups, and ``max`` with those replaced by 1 so no lane divides by 0."""
    zero = amax < GROUP_MAX_EPS
    return zero, np.where(zero, np.float32(1), signed)


@functools.lru_cache(maxsize=4)  # one entry per chunk shape and nmax
def _ceiling(shape: tuple[int, ...], value: int) -> F32:
    """A full constant array: np.minimum with it beats a scalar operand or np.clip."""
    full = np.full(shape, value, dtype=np.float32)
    full.flags.writeable = False
    return full


def _levels(x: F32, iscale: F32, nmax: int, out: F32, reach: float) -> F32:
    """``clamp(nearest_int(iscale*x), -nmax, nmax-1)`` as float32.

    ``np.rint`` equals nearest_int because |iscale*x| <= nmax + 1 for finite x (|x| <= |max|).
    ``reach`` is |iscale*max|, the numerator of iscale: every |iscale*x| is at most reach*(1+2u),
    so below nmax + 0.5 nothing rounds under -nmax and only the upper clamp is needed (np.minimum
    with a constant array, ~1.6x faster than np.clip, which wins when both sides are needed), and
    below nmax - 0.5 (the four smallest candidates) neither is.
    """
    np.multiply(x, iscale, out=out)
    np.rint(out, out=out)
    if reach < nmax - 0.51:
        return out
    if reach < nmax + 0.49:
        return np.minimum(out, _ceiling(out.shape, nmax - 1), out=out)
    return np.clip(out, -nmax, nmax - 1, out=out)


def _weighted_sums(wx: F32, w: F32, lev: F32) -> tuple[F32, F32]:
    """Sequential ``sumlx = Σ (w*x)*l`` and ``suml2 = Σ (w*l)*l`` over the leading axis."""
    sums = np.empty((2, wx.shape[1]), dtype=np.float32)
    sum_products(wx, lev, out=sums[0])
    sum_products(w, lev, lev, out=sums[1])
    return sums[0], sums[1]


def _exact_levels(x: F32, iscale: F32, nmax: int) -> F32:
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


@functools.lru_cache(maxsize=2)
def _reaches(nmax: int) -> F32:
    """C's ``nmax + 0.1f*is`` for is = -9..9 without 0, in float32 (iscale = -reach/max)."""
    reach = [np.float32(nmax) + np.float32(0.1) * np.float32(step) for step in _QX_STEPS]
    out = np.array(reach, dtype=np.float32)
    out.flags.writeable = False
    return out


def make_qx_quants(x: F32, nmax: int) -> tuple[F32, npt.NDArray[np.int8]]:
    """ggml ``make_qx_quants(16, nmax, x, L, rmse_type=1, NULL)`` for every column of ``x``.

    Returns the per-group scale (usually negative) and the levels L in ``0..2*nmax-1``. Only the
    best candidate's inverse scale is kept during the search; L is rebuilt once at the end.
    """
    amax, signed = first_absmax(x)
    zero, safe_max = _safe_max(amax, signed)
    w = x * x
    wx = w * x
    lev = np.empty_like(x)
    fnmax = np.float32(nmax)
    first_iscale = -fnmax / safe_max
    sumlx, suml2 = _weighted_sums(wx, w, _levels(x, first_iscale, nmax, lev, nmax))
    scale = np.where(suml2 != 0, sumlx / suml2, _ZERO)
    best = scale * sumlx
    # Only the best gain is selected per candidate. Each candidate's scale and win mask go into
    # preallocated rows; the last winner per column is picked once after the search (np.where
    # costs ~4 ns per element on random masks), and its iscale recomputed from its reach.
    reach = _reaches(nmax)
    cand_scales = np.empty((reach.shape[0], x.shape[1]), dtype=np.float32)
    taken = np.zeros(cand_scales.shape, dtype=np.bool_)
    for k, step_reach in enumerate(reach):
        iscale = -step_reach / safe_max
        sumlx, suml2 = _weighted_sums(wx, w, _levels(x, iscale, nmax, lev, float(step_reach)))
        better = np.greater(sumlx * sumlx, best * suml2, out=taken[k])
        better &= suml2 > 0
        if not better.any():
            continue
        cand_scale = np.divide(sumlx, suml2, out=cand_scales[k])
        best = np.where(better, cand_scale * sumlx, best)
    won, last = last_taken(taken)
    best_iscale = np.where(won, -reach[last] / safe_max, first_iscale)
    scale = np.where(won, cand_scales[last, np.arange(x.shape[1])], scale)
    levels = _exact_levels(x, best_iscale, nmax).astype(np.int8) + np.int8(nmax)
    levels[:, zero] = 0
    return np.where(zero, np.float32(0), scale), levels


@dataclass(frozen=True, slots=True)
class _Q3Groups:
    """make_q3_quants' per-group state, element-major; the arrays are updated in place.

    ``a = (w*x)*L`` and ``b = (w*L)*L`` cache each element's terms of ``sumlx`` and ``suml2``, so
    a refinement step costs two subtractions instead of recomputing them.
    """

    x: F32
    w: F32
    wx: F32
    a: F32
    b: F32
    levels: npt.NDArray[np.int32]
    sumlx: F32
    suml2: F32

    def take(self, columns: npt.NDArray[np.intp]) -> _Q3Groups:
        return _Q3Groups(*(np.ascontiguousarray(v[..., columns]) for v in self._arrays()))

    def put(self, columns: npt.NDArray[np.intp], part: _Q3Groups) -> None:
        """Write back what a pass can change (x, w and wx are read-only)."""
        for mine, theirs in zip(self._arrays()[3:], part._arrays()[3:], strict=True):
            mine[..., columns] = theirs

    def _arrays(self) -> tuple[npt.NDArray[Any], ...]:
        return (self.x, self.w, self.wx, self.a, self.b, self.levels, self.sumlx, self.suml2)


def make_q3_quants(x: F32, nmax: int) -> tuple[F32, npt.NDArray[np.int8]]:
    """ggml ``make_q3_quants(16, nmax, x, L, do_rmse=true)`` for every column of ``x``.

    The refinement is sequential inside a group (changing L[i] changes the sums the test for i+1
    uses), so the loop runs over element positions while each step is vectorized over all groups.
    C stops a group after a pass without changes, and so do we: each pass after the first runs
    only on the groups the previous pass changed (usually a fifth of them, then a twentieth).
    """
    amax, signed = first_absmax(x)
    zero, safe_max = _safe_max(amax, signed)
    w = x * x
    wx = w * x
    lev = _exact_levels(x, -np.float32(nmax) / safe_max, nmax)
    a = wx * lev
    b = (w * lev) * lev
    groups = _Q3Groups(
        x, w, wx, a, b, lev.astype(np.int32), np.add.reduce(a, axis=0), np.add.reduce(b, axis=0)
    )
    active = _refine_pass(groups, nmax).nonzero()[0]
    for _ in range(_Q3_PASSES - 1):
        if not active.size:
            break
        part = groups.take(active)
        changed = _refine_pass(part, nmax)
        groups.put(active, part)
        active = active[changed]
    sumlx, suml2 = groups.sumlx, groups.suml2
    scale = np.where(suml2 > 0, sumlx / suml2, np.float32(0))
    levels = groups.levels.astype(np.int8) + np.int8(nmax)
    levels[:, zero] = 0
    return np.where(zero, np.float32(0), scale), levels


def _refine_pass(g: _Q3Groups, nmax: int) -> npt.NDArray[np.bool_]:
    """One make_q3_quants pass over i = 0..15, in place; returns which groups changed."""
    changed = np.zeros(g.x.shape[1], dtype=np.bool_)
    # Constant arrays: np.clip and scalar bounds measured 2-3x slower than this in the hot loop.
    lo = np.full(g.x.shape[1], -nmax, dtype=np.int32)
    hi = np.full(g.x.shape[1], nmax - 1, dtype=np.int32)
    for i in range(g.x.shape[0]):
        slx = g.sumlx - g.a[i]
        sl2 = g.suml2 - g.b[i]
        # Exact nearest_int: slx may be tiny, so the quotient can leave rint's exact range.
        new = nearest_int(np.divide(g.x[i] * sl2, slx, dtype=np.float32))
        np.minimum(np.maximum(new, lo, out=new), hi, out=new)
        # Only lanes proposing a different level need the acceptance test; they are few.
        lanes = ((slx > 0) & (new != g.levels[i])).nonzero()[0]
        if lanes.size:
            changed[_try_levels(g, i, lanes, new[lanes], slx[lanes], sl2[lanes])] = True
    return changed


def _try_levels(
    g: _Q3Groups,
    i: int,
    lanes: npt.NDArray[np.intp],
    new: npt.NDArray[np.int32],
    slx: F32,
    sl2: F32,
) -> npt.NDArray[np.intp]:
    """Accept ``new`` for element ``i`` of the groups ``lanes`` where C would; returns those."""
    level = new.astype(np.float32)
    a = g.wx[i, lanes] * level
    b = (g.w[i, lanes] * level) * level
    slx += a
    sl2 += b
    sumlx, suml2 = g.sumlx[lanes], g.suml2[lanes]
    ok = (sl2 > 0) & ((slx * slx) * suml2 > (sumlx * sumlx) * sl2)
    won = lanes[ok]
    g.levels[i, won], g.a[i, won], g.b[i, won] = new[ok], a[ok], b[ok]
    g.sumlx[won], g.suml2[won] = slx[ok], sl2[ok]
    return won
