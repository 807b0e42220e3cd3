"""The vectorized make_qkx2_quants (qconv.quant.kquant_search) against C, one group at a time.

The search computes its least-squares fit in five calls on stacked per-column sums, writes the
residuals over the levels scratch, updates the running min and best error in place and fixes up
columns whose fitted min is positive by indexed writes. Each of these is checked here against a
float32 scalar transliteration of ggml-quants.c ``make_qkx2_quants`` (every C statement in C's
order, np.float32 scalars, ``nearest_int`` by its bit trick), which needs no libggml, on groups
built to reach each branch: all-positive groups (the positive-min fix-up), zero and partly zero
weights (D <= 0), flat and nearly flat groups, exact ties, huge, tiny and subnormal values. With
libggml built, the weighted kernels that run the search are also compared live on such rows,
including one-block rows (the scale and min codes of a single super-block fitted side by side).
"""

from __future__ import annotations

import numpy as np
import pytest
from ggml_oracle import load_ggml
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qconv import GGMLType
from qconv.quant import quantize
from qconv.quant.kquant_search import make_qkx2_quants

F = np.float32
ORACLE = load_ggml()
# (nmax, rmin, rdelta, nstep, use_mad) as the kernels call the search
SEARCHES = {
    "q4_k_imatrix": (15, -0.9, 0.05, 36, False),
    "q5_k_imatrix": (31, -0.9, 0.05, 36, False),
    "q2_k_imatrix": (3, -0.9, 0.05, 36, False),
    "q4_k": (15, -1.0, 0.1, 20, False),
    "q5_k": (31, -0.5, 0.1, 15, False),
    "q2_k": (3, -0.5, 0.1, 15, True),
}


def _nearest_int(value: np.float32) -> int:
    bits = int(np.array(value + F(12582912.0), dtype=np.float32).view(np.int32))
    return (bits & 0x007FFFFF) - 0x00400000


def _reference(
    x: np.ndarray, w: np.ndarray, nmax: int, rmin: float, rdelta: float, nstep: int, mad: bool
) -> tuple[list[int], np.float32, np.float32]:
    """ggml-quants.c make_qkx2_quants for one group, statement by statement in float32."""
    n = len(x)
    lo, hi, sum_w = x[0], x[0], w[0]
    sum_x = sum_w * x[0]
    for i in range(1, n):
        lo = x[i] if x[i] < lo else lo
        hi = x[i] if x[i] > hi else hi
        sum_w += w[i]
        sum_x += w[i] * x[i]
    if lo > 0:
        lo = F(0)
    if hi == lo:
        return [0] * n, F(0), -lo

    def error(scale: np.float32, shift: np.float32, levels: list[int]) -> np.float32:
        total = F(0)
        for i in range(n):
            diff = scale * F(levels[i]) + shift - x[i]
            total += w[i] * (abs(diff) if mad else diff * diff)
        return total

    def levels_for(iscale: np.float32, shift: np.float32) -> list[int]:
        return [max(0, min(nmax, _nearest_int(iscale * (x[i] - shift)))) for i in range(n)]

    iscale = F(nmax) / (hi - lo)
    scale = F(1) / iscale
    best_levels = levels_for(iscale, lo)
    best = error(scale, lo, best_levels)
    for step in range(nstep + 1):
        iscale = (F(rmin) + F(rdelta) * F(step) + F(nmax)) / (hi - lo)
        levels = levels_for(iscale, lo)
        sum_l, sum_l2, sum_xl = F(0), F(0), F(0)
        for i in range(n):
            wl = w[i] * F(levels[i])
            sum_l += wl
            sum_l2 += wl * F(levels[i])
            sum_xl += wl * x[i]
        det = sum_w * sum_l2 - sum_l * sum_l
        if det > 0:
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / det
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det
            if this_min > 0:
                this_min = F(0)
                this_scale = sum_xl / sum_l2
            err = error(this_scale, this_min, levels)
            if err < best:
                best_levels, best, scale, lo = levels, err, this_scale, this_min
    return best_levels, scale, -lo


def _groups(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 16) element-major groups and weights that reach every branch of the search."""
    rng = np.random.default_rng(99)
    x = rng.standard_normal((16, n))
    w = rng.lognormal(0.0, 1.5, (16, n))
    x[1] = np.abs(x[1]) + 0.5  # all positive: the fitted min comes out > 0 and is reset to 0
    x[2] = np.abs(x[2])
    w[2, : n // 2] = 0.0  # half the weights zero
    w[3] = 0.0  # no weight at all: D is 0 for every candidate
    x[4] = 0.75  # flat
    x[5] = -2.0
    x[5, n // 3] = -1.0  # flat but for one value
    x[6] = rng.integers(-3, 4, n)  # ties after scaling
    x[7] = np.round(x[7] * 8) / 8
    x[8] *= 1e30
    x[9] *= 1e-30
    x[10] *= 1e-40  # subnormal
    x[11, 0] = 50.0  # one outlier
    x[12] = -np.abs(x[12])  # all negative
    x[13, ::2] = 0.0
    w[14] = rng.uniform(0.0, 1.0, n) * 1e30
    w[15] = np.where(rng.random(n) < 0.5, 0.0, 1e-30)
    with np.errstate(under="ignore", over="ignore"):
        return x.astype(np.float32).T.copy(), w.astype(np.float32).T.copy()


def _check(x: np.ndarray, w: np.ndarray, params: tuple[int, float, float, int, bool]) -> None:
    """x, w: (n, groups) element-major; every column against the scalar transliteration."""
    with np.errstate(all="ignore"):
        levels, scale, the_min = make_qkx2_quants(x, w, *params)
        for g in range(x.shape[1]):
            ref_levels, ref_scale, ref_min = _reference(x[:, g], w[:, g], *params)
            assert levels[:, g].astype(int).tolist() == ref_levels, f"group {g}: levels"
            assert np.float32(scale[g]).tobytes() == F(ref_scale).tobytes(), f"group {g}: scale"
            assert np.float32(the_min[g]).tobytes() == F(ref_min).tobytes(), f"group {g}: min"


@pytest.mark.parametrize("search", list(SEARCHES), ids=str)
def test_search_matches_a_float32_transliteration_of_ggml_on_branch_reaching_groups(search):
    x, w = _groups(32)
    _check(x, w, SEARCHES[search])
    if SEARCHES[search][4]:  # Q2_K's reference search weighs by |x|, never 0 where x is not
        _check(x, np.abs(x), SEARCHES[search])


@pytest.mark.parametrize("search", list(SEARCHES), ids=str)
def test_a_zero_minimum_keeps_the_sign_of_the_first_zero_as_in_c(search):
    # Found by the drawn-groups test below: NumPy's minimum of +0.0 and -0.0 may be either, C's
    # strict running comparison keeps the first; weighted Q4_1/Q5_1 store -min as the block's m.
    x = np.full((16, 4), -0.0, dtype=np.float32)
    x[0, 0] = 0.0  # +0.0 first, -0.0 after: C's min is +0.0
    x[:, 1] = 0.0
    x[5, 1] = -0.0  # the same the other way round
    x[:, 2] = np.abs(np.linspace(0.0, 3.0, 16, dtype=np.float32))
    x[7, 2] = -0.0  # a zero minimum in a group that is not flat
    x[:, 3] = -x[:, 2]
    for w in (np.zeros_like(x), np.ones_like(x)):
        _check(x, w, SEARCHES[search])


@pytest.mark.parametrize("search", list(SEARCHES), ids=str)
def test_a_sum_of_negative_zeros_is_negative_zero_as_in_c(search):
    # Also found by the drawn-groups test: C's sum_x starts from its first term, so -0.0 terms
    # only sum to -0.0, which signs the fitted min; NumPy's reduction starts from +0.0.
    x = np.full((16, 2), -0.0, dtype=np.float32)
    x[15] = -528.46405
    w = np.zeros_like(x)
    w[0] = 484.4961
    _check(x, w, SEARCHES[search])


@settings(max_examples=25, deadline=None)
@given(
    search=st.sampled_from(list(SEARCHES)),
    x=arrays(np.float32, (16, 3), elements=st.floats(-1e3, 1e3, width=32)),
    w=arrays(np.float32, (16, 3), elements=st.floats(0, 1e3, width=32)),
)
def test_search_matches_the_transliteration_on_drawn_groups(search, x, w):
    _check(np.ascontiguousarray(x), np.ascontiguousarray(w), SEARCHES[search])


@pytest.mark.skipif(ORACLE is None, reason="libggml-base.so not built")
@pytest.mark.parametrize(
    "qtype",
    [GGMLType.Q2_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q4_1, GGMLType.Q5_1],
    ids=lambda t: t.name,
)
def test_weighted_search_kernels_match_live_ggml_on_positive_and_one_block_rows(qtype):
    rng = np.random.default_rng(5)
    rows = rng.standard_normal((6, 256))
    rows[0] = np.abs(rows[0]) + 0.25  # every group all positive
    rows[1] = np.abs(rows[1])
    rows[2] = rng.integers(0, 5, 256)  # positive ties
    rows[3, ::3] = 0.0
    rows[4] *= 1e-20
    rows[5] = -0.0
    rows[5, ::32] = 0.0  # blocks of zeros, +0.0 first: C's m is +0.0 (-min of a +0.0 minimum)
    imatrix = rng.gamma(0.5, 2.0, 256)
    imatrix[:40] = 0.0
    for i, row in enumerate(rows.astype(np.float32)):
        for weights in (imatrix, np.ones(256)):
            qw = weights.astype(np.float32)
            expected = ORACLE.quantize(qtype, row[None], qw)
            assert np.array_equal(quantize(row[None], qtype, qw), expected), f"row {i}"
    many = np.abs(rng.standard_normal((40, 512))).astype(np.float32)
    qw = rng.gamma(0.5, 2.0, 512).astype(np.float32)
    assert np.array_equal(quantize(many, qtype, qw), ORACLE.quantize(qtype, many, qw))
