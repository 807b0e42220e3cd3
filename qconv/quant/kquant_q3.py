"""ggml-quants.c ``make_q3_quants`` (do_rmse = true): Q3_K's signed-scale search without an imatrix.

Layout and rounding conventions as in kquant_qx.py: groups element-major, ``x[i, g]`` = element i
of group g, float32 in C's expression order without fused multiply-add.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qconv.quant.kquant_qx import SAFE, exact_levels, first_absmax, safe_max_of
from qconv.quant.rounding import nearest_int

F32 = npt.NDArray[np.float32]

_Q3_PASSES = 5  # make_q3_quants: at most 5 refinement passes per group


@dataclass(frozen=True, slots=True)
class _Q3Groups:
    """make_q3_quants' state for the groups still refining, element-major, updated in place.

    Only x and the levels L are kept per element: w = x*x and C's per-element terms of the sums,
    ``a = (w*x)*L`` and ``b = (w*L)*L``, are recomputed each round (the same float32 operations
    give the same values), which is cheaper than allocating, filling and compacting them. ``cursor``
    is the next position C tests in pass number ``passes``; ``changed`` says whether that pass
    accepted a level yet. ``columns`` maps each group back to its column in the input.
    """

    x: F32
    levels: F32
    sumlx: F32
    suml2: F32
    cursor: npt.NDArray[np.intp]
    passes: npt.NDArray[np.intp]
    changed: npt.NDArray[np.bool_]
    columns: npt.NDArray[np.intp]

    def keep(self, kept: npt.NDArray[np.intp]) -> _Q3Groups:
        """The state of groups ``kept`` only."""
        return _Q3Groups(
            np.take(self.x, kept, axis=1),
            np.take(self.levels, kept, axis=1),
            *(getattr(self, name)[kept] for name in self.__slots__[2:]),
        )


def make_q3_quants(
    x: F32, nmax: int, scratch: F32 | None = None
) -> tuple[F32, npt.NDArray[np.int8]]:
    """ggml ``make_q3_quants(16, nmax, x, L, do_rmse=true)`` for every column of ``x``.

    The refinement is sequential inside a group (accepting L[i] changes the sums the test for i+1
    uses), but acceptances are rare: a group changes about twice in all its passes. So each round
    evaluates all 16 positions of every refining group at once from its current sums, which is
    exactly what C computes up to the first position it would accept; that first acceptance (from
    the group's cursor on, else in its next pass) is applied and the rest recomputed next round.
    A group leaves when C would stop: after a pass without changes, or after 5 passes.

    ``scratch``, if given, is a flat float32 buffer of at least ``2 * x.size`` elements that the
    rounds use for their two big temporaries: a caller reusing one across chunks saves the page
    faults of fresh memory, which cost about as much as the arithmetic.
    """
    amax, signed = first_absmax(x)
    zero, safe_max = safe_max_of(amax, signed)
    levels = exact_levels(x, -np.float32(nmax) / safe_max, nmax)
    n = x.shape[1]
    sumlx, suml2 = np.zeros((2, n), dtype=np.float32)
    g = _Q3Groups(
        x, levels, np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32),
        np.zeros(n, dtype=np.intp), np.zeros(n, dtype=np.intp), np.zeros(n, dtype=np.bool_),
        np.arange(n),
    )  # fmt: skip
    if zero.any():  # all-zero groups keep L = 0 and skip the search, as in C
        g = g.keep((~zero).nonzero()[0])
    # The first round may work on x and levels themselves (no copies): it only changes the levels
    # of groups that go on, whose final L is written when they are done.
    first = True
    while g.columns.size:
        g = _refine_round(g, nmax, (levels, sumlx, suml2), first, scratch)
        first = False
    scale = np.where(suml2 > 0, sumlx / suml2, np.float32(0))
    out = levels.astype(np.int8) + np.int8(nmax)
    out[:, zero] = 0
    return np.where(zero, np.float32(0), scale), out


def _next_levels(q: F32, nmax: int) -> F32:
    """``clamp(nearest_int(q), -nmax, nmax-1)`` as float32, in place when it can.

    q = x*sl2/slx may be huge (slx tiny, or 0 where the level is not tried), outside rint's exact
    range: then the exact nearest_int emulation runs instead (~5x slower).
    """
    if np.max(q) < SAFE and np.min(q) > -SAFE:  # False for any NaN
        return np.clip(np.rint(q, out=q), -nmax, nmax - 1, out=q)
    return np.clip(nearest_int(q), -nmax, nmax - 1).astype(np.float32)


def _refine_round(
    g: _Q3Groups, nmax: int, final: tuple[F32, F32, F32], first: bool, scratch: F32 | None
) -> _Q3Groups:
    """Apply each group's next accepted level; returns the groups that may change again.

    Groups that are done write (L, sumlx, suml2) into ``final``; in the ``first`` round, which
    also sets C's initial sums, their L never changed, so the initial levels there stand.
    """
    x, levels = g.x, g.levels
    n = g.columns.size
    # Few big temporaries: each fresh megabyte costs page faults comparable to the arithmetic.
    if scratch is None:
        w = np.multiply(x, x)
        slx = np.multiply(w, x)
    else:
        w = np.multiply(x, x, out=scratch[: x.size].reshape(x.shape))
        slx = np.multiply(w, x, out=scratch[x.size : 2 * x.size].reshape(x.shape))
    np.multiply(slx, levels, out=slx)  # a = (w*x)*L, then sumlx - a in place
    sl2 = np.multiply(np.multiply(w, levels, out=w), levels, out=w)  # b = (w*L)*L
    if first:
        np.add.reduce(slx, axis=0, out=g.sumlx)  # in order, as C
        np.add.reduce(sl2, axis=0, out=g.suml2)
    np.subtract(g.sumlx, slx, out=slx)
    np.subtract(g.suml2, sl2, out=sl2)
    new = _next_levels(np.divide(np.multiply(x, sl2, out=sl2), slx, out=sl2), nmax)
    tried = np.greater(slx, 0)
    tried &= new != levels
    at = np.flatnonzero(tried)
    pos, group = np.divmod(at, n)
    level, old, x_at = new.ravel()[at], levels.ravel()[at], x.ravel()[at]
    w_at = x_at * x_at
    wx_at = w_at * x_at
    sumlx, suml2 = g.sumlx[group], g.suml2[group]
    slx = (sumlx - wx_at * old) + wx_at * level  # as C: slx - w*x*L + w*x*new_l
    sl2 = (suml2 - (w_at * old) * old) + (w_at * level) * level
    ok = (sl2 > 0) & ((slx * slx) * suml2 > (sumlx * sumlx) * sl2)
    # Positions before the cursor belong to the group's next pass, which C only runs after a
    # pass with changes and at most 5 times; per group the first acceptance in that order wins.
    later = pos < g.cursor[group]
    ok &= ~later | (g.changed & (g.passes < _Q3_PASSES - 1))[group]
    order = np.where(ok, pos + 16 * later, 99)
    best = np.full(n, 99, dtype=np.intp)
    np.minimum.at(best, group, order)
    won = np.flatnonzero((order == best[group]) & ok)
    group, at = group[won], at[won]
    levels.ravel()[at] = level[won]
    g.sumlx[group], g.suml2[group] = slx[won], sl2[won]
    g.passes[group] += later[won]
    g.changed[group] = True
    g.cursor[group] = pos[won] + 1
    done = best == 99
    columns = g.columns[done]
    if not first:
        final[0][:, columns] = levels[:, done]
    final[1][columns], final[2][columns] = g.sumlx[done], g.suml2[done]
    return g.keep(np.flatnonzero(~done))
