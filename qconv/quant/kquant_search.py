"""ggml-quants.c ``make_qkx2_quants``: the scale-and-min search of Q4_K, Q5_K, Q2_K, Q4_1 and Q5_1.

It also runs ``make_qkx3_quants`` (the importance-matrix kernels' search), which for non-NaN input
and non-NULL weights computes the same. Layout as in kquant.py: *element-major* arrays
``(n, n_sub)``, one column per sub-block, so C's sequential float32 sums are in-order reductions
over axis 0 (``np.add.reduce`` / ``sum_products``).

Cost model (measured, numpy-kernels.md): each candidate makes ~11 full passes over the chunk and
~20 calls on per-column ``(n_sub,)`` arrays. The full passes run near memory speed, so the search
keeps its working set to three ``(n, n_sub)`` arrays (x, w and one scratch that holds the levels and
then, in place, the residuals); the per-column calls cost about 1 ns per column each once the full
passes have pushed their operands out of L1, so the fit and the bookkeeping use as few as possible.
"""

from __future__ import annotations

import numpy as np

from qconv.quant.kquant import F32, last_taken, round_bounded, sum_products

_ZERO = np.float32(0.0)


def _levels(x: F32, shift: F32, iscale: F32, shifted: F32, nmax: int, out: F32) -> F32:
    """``MAX(0, MIN(nmax, nearest_int(iscale*(x[i] - min))))`` for every element, into ``out``.

    ``shifted`` stacks each column's ``x_min - min`` and ``x_max - min`` (2, n_sub), computed with
    the same float32 subtraction; multiplied by ``iscale`` they bound every element's value
    (rounding is monotone), which lets the rounding skip clamps that cannot bind.
    """
    np.subtract(x, shift, out=out)
    np.multiply(out, iscale, out=out)
    bounds = np.multiply(shifted, iscale)
    floor = float(np.minimum.reduce(bounds, axis=None))
    return round_bounded(out, nmax, floor, float(np.maximum.reduce(bounds, axis=None)))


def _error_in_place(
    x: F32, w: F32, levels: F32, scale: F32, shift: F32, use_mad: bool, out: F32
) -> F32:
    """``Σ_i w_i * f((scale*L_i + min) - x_i)`` (f = |·| or square) in element order, into ``out``.

    Overwrites ``levels`` with the residuals: the search rebuilds levels for every candidate anyway,
    and a separate residual array would put a fourth full array in the working set.
    """
    np.multiply(levels, scale, out=levels)
    np.add(levels, shift, out=levels)
    np.subtract(levels, x, out=levels)
    if use_mad:
        return sum_products(np.abs(levels, out=levels), w, out=out)
    return sum_products(levels, levels, w, out=out)  # (d*d)*w is C's w*(d*d): products commute


class _Fit:
    """C's weighted least-squares fit for fixed levels, in five calls on per-column arrays.

    ``s`` rows: 0 ``sum_x`` (fixed), 1 ``sum_l``, 2 ``sum_xl``, 3 ``sum_l2``. C's three numerators
    are ``[sum_w*sum_xl, sum_w*sum_l2, sum_l2*sum_x] - sum_l*[sum_x, sum_l, sum_xl]`` (scale
    numerator, D, min numerator): with this row order the second term is one product and the first
    two, each with C's operands (float32 products commute).
    """

    __slots__ = ("first", "flags", "num", "s", "second", "sum_w")

    def __init__(self, sum_w: F32, sum_x: F32) -> None:
        n_cols = sum_x.shape[0]
        self.sum_w = sum_w
        self.s = np.empty((4, n_cols), dtype=np.float32)
        self.s[0] = sum_x
        self.first = np.empty((3, n_cols), dtype=np.float32)
        self.second = np.empty((3, n_cols), dtype=np.float32)
        self.num = np.empty((3, n_cols), dtype=np.float32)
        self.flags = np.empty(n_cols, dtype=np.bool_)

    def __call__(self, x: F32, w: F32, levels: F32, out: F32) -> tuple[F32, F32]:
        """``(D, [this_scale, this_min])`` per column, the latter written into ``out`` (2, n_cols);
        C skips columns with D <= 0."""
        s, first, num = self.s, self.first, self.num
        sum_products(w, levels, out=s[1])
        sum_products(w, levels, x, out=s[2])
        sum_products(w, levels, levels, out=s[3])
        np.multiply(self.sum_w, s[2:4], out=first[0:2])
        np.multiply(s[3], s[0], out=first[2])
        np.subtract(first, np.multiply(s[1], s[0:3], out=self.second), out=num)
        fitted = np.divide(num[0::2], num[1], out=out)
        positive = np.greater(fitted[1], 0, out=self.flags)
        if np.count_nonzero(positive):  # C: this_min = 0, this_scale = sum_xl/sum_l2. Rare and
            # few columns: indexed writes, where np.where or masked ufuncs cost ~2-6 ns a column.
            cols = np.flatnonzero(positive)
            fitted[0, cols] = s[2, cols] / s[3, cols]
            fitted[1, cols] = 0
        return num[1], fitted


def _factors(nmax: int, rmin: float, rdelta: float, nstep: int) -> list[np.float32]:
    """C's ``rmin + rdelta*is + nmax`` for is = 0..nstep, each step rounded to float32."""
    return [
        np.float32(rmin) + np.float32(rdelta) * np.float32(step) + np.float32(nmax)
        for step in range(nstep + 1)
    ]


def _sign_zero_minima_as_c(x: F32, low: F32) -> None:
    """Give a column minimum of zero the sign C's running minimum gives it, in place.

    C's ``if (x[i] < min) min = x[i]`` from ``min = x[0]`` keeps the first of equal values, so a
    zero minimum carries the sign of the column's first zero, where NumPy's reduction may return
    either. Only the sign differs, and it reaches the bytes only through ``-min`` of a flat column,
    which Q4_1 and Q5_1 store as the block's m (a block of zeros, +0.0 first and -0.0 later).
    """
    zero = np.flatnonzero(low == 0)
    if zero.size:
        first = np.argmax(x[:, zero] == 0, axis=0)
        low[zero] = x[first, zero]


def _first_term_sum(terms: F32) -> F32:
    """Column sums as C's ``s = t[0]; s += t[i]``: in order, and -0.0 when every term is -0.0.

    NumPy's reduction starts from +0.0, so it returns +0.0 there; the sign then flows through
    the fitted min into the m that Q4_1/Q5_1 store (a group of zeros and zero weights).
    """
    sums: F32 = np.add.reduce(terms, axis=0)
    zero = np.flatnonzero(sums == 0)
    if zero.size:
        negative = np.logical_and.reduce(np.signbit(terms[:, zero]), axis=0)
        sums[zero[negative]] = -0.0
    return sums


def make_qkx2_quants(
    x: F32,
    w: F32,
    nmax: int,
    rmin: float,
    rdelta: float,
    nstep: int,
    use_mad: bool,
) -> tuple[F32, F32, F32]:
    """ggml-quants.c ``make_qkx2_quants`` for every column of element-major ``x`` at once.

    Returns ``(levels, scale, the_min)``: float32 levels 0..nmax shaped like ``x``, and per column
    the scale and the negated offset (``*the_min = -min``), exactly as C computes them. Only the
    running ``min`` and best error are updated per candidate (later candidates use the new
    ``min``, as in C); which candidate won last is resolved once after the search, and the levels
    are rebuilt once.
    """
    extremes = np.stack([np.minimum.reduce(x, axis=0), np.maximum.reduce(x, axis=0)])
    _sign_zero_minima_as_c(x, extremes[0])
    fit = _Fit(_first_term_sum(w), _first_term_sum(w * x))
    mn = np.where(extremes[0] > 0, _ZERO, extremes[0]).astype(np.float32)
    flat = extremes[1] == mn
    t = np.empty_like(x)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        shifted = np.subtract(extremes, mn)  # x_min - min and x_max - min, kept up to date
        iscale = np.float32(nmax) / shifted[1]
        scale = np.float32(1.0) / iscale
        # A flat column returns early in C with L = 0; a zero inverse scale gives the same levels.
        iscale[flat] = 0
        # span = xmax - min, but inf on flat columns so candidates get factor/inf = 0 there.
        flat_inf = np.where(flat, np.float32(np.inf), _ZERO)
        span = shifted[1] + flat_inf
        levels = _levels(x, mn, iscale, shifted, nmax, t)
        best = _error_in_place(x, w, levels, scale, mn, use_mad, np.empty_like(mn))
        start = (iscale, mn.copy(), scale)
        factors = _factors(nmax, rmin, rdelta, nstep)
        # Rows per candidate: its iscale, the min it started from, and its fitted scale and min
        # (written there by the fit), kept for the columns where it is the last winner (picked
        # once below); ``taken``: where it won.
        rows = np.empty((4, len(factors), x.shape[1]), dtype=np.float32)
        taken = np.zeros(rows.shape[1:], dtype=np.bool_)
        err, positive_det = np.empty_like(best), np.empty(best.shape, dtype=np.bool_)
        for k, factor in enumerate(factors):
            cand_iscale = np.divide(factor, span, out=rows[0, k])
            levels = _levels(x, mn, cand_iscale, shifted, nmax, t)
            det, fitted = fit(x, w, levels, rows[2:4, k])
            _error_in_place(x, w, levels, fitted[0], fitted[1], use_mad, err)
            take = np.less(err, best, out=taken[k])
            take &= np.greater(det, 0, out=positive_det)
            if not np.count_nonzero(take):  # ~2x faster than take.any()
                continue
            rows[1, k] = mn
            np.putmask(best, take, err)  # in place: ~half np.where's time at these densities
            np.putmask(mn, take, fitted[1])
            np.subtract(extremes, mn, out=shifted)
            np.add(shifted[1], flat_inf, out=span)
        won, last = last_taken(taken)
        picked = rows[:3, last, np.arange(x.shape[1])]
        best_iscale, best_shift, scale = (
            np.where(won, value, first) for value, first in zip(picked, start, strict=True)
        )
        levels = _levels(x, best_shift, best_iscale, extremes - best_shift, nmax, t)
    scale = np.where(flat, _ZERO, scale).astype(np.float32)
    return levels, scale, (-mn).astype(np.float32)
