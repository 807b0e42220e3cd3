"""make_qx_quants' clamp-free candidate levels (kquant_qx._clamp_free_inputs) at their edges.

The search rounds each candidate's levels from copies of the group whose extreme elements were
moved to a fraction of the maximum, instead of clamping every candidate's levels. These tests put
elements densely around every clamp threshold and every fraction: the invariant is checked against
the clamped definition directly, and the whole kernels against ggml's C where the library is built.
"""

from __future__ import annotations

import numpy as np
import pytest
from ggml_oracle import load_ggml

from qconv import GGMLType
from qconv.quant import kquant_qx, quantize

ORACLE = load_ggml()
needs_oracle = pytest.mark.skipif(ORACLE is None, reason="libggml-base.so not built")
NMAXES = [4, 8, 16, 32]  # Q3_K (and its scales: 32), Q4_0, Q5_0, Q6_K


def _edge_fractions(nmax: int) -> np.ndarray:
    """|x|/max values at and around every place a candidate's level can clamp or step."""
    reach = kquant_qx._reaches(nmax).astype(np.float64)
    _, fractions = kquant_qx._clamp_sets(nmax)
    edges = [*fractions, 1.0]
    for level in (nmax - 1.5, nmax - 0.5, nmax + 0.5):
        edges.extend(level / reach)
    offsets = np.array([-1e-3, -1e-6, -1e-7, 0.0, 1e-7, 1e-6, 1e-3])
    grid = (np.array(edges)[:, None] * (1 + offsets)).ravel()
    return grid[(grid > 0) & (grid <= 1)]


def _edge_groups(nmax: int, n: int, seed: int) -> np.ndarray:
    """Element-major ``(n, groups)``: each group has its maximum (either sign) and n - 1 elements
    drawn from the edge fractions on either side, at assorted magnitudes."""
    rng = np.random.default_rng(seed)
    fractions = _edge_fractions(nmax)
    groups = 4096
    amax = 10.0 ** rng.uniform(-3, 3, groups)
    sign = rng.choice([-1.0, 1.0], groups)
    u = rng.choice(fractions, (n, groups)) * rng.choice([-1.0, 1.0], (n, groups))
    x = u * amax * sign
    x[rng.integers(0, n, groups), np.arange(groups)] = amax * sign  # the maximum itself
    return x.astype(np.float32)


@pytest.mark.parametrize("nmax", NMAXES)
def test_clamp_free_inputs_give_every_candidate_its_clamped_level(nmax: int) -> None:
    x = _edge_groups(nmax, 16, seed=nmax)
    amax, signed = kquant_qx.first_absmax(x)
    y = x * np.where(signed < 0, np.float32(-1), np.float32(1))
    scratch = np.empty((2, *x.shape), dtype=np.float32)
    inputs = kquant_qx._clamp_free_inputs(y, amax, nmax, scratch)
    assert inputs is not None
    clamps = 0
    for k, reach in enumerate(kquant_qx._reaches(nmax)):
        iscale = np.divide(-reach, amax, dtype=np.float32)
        unclamped = np.rint(np.multiply(y, iscale, dtype=np.float32))
        expected = np.clip(unclamped, -nmax, nmax - 1)
        got = np.rint(np.multiply(inputs[k], iscale, dtype=np.float32))
        np.testing.assert_array_equal(got, expected, err_msg=f"nmax {nmax}, candidate {k}")
        clamps += int((unclamped != expected).sum())
    assert clamps > 1000  # the data does reach both clamps


def test_small_nmax_has_no_clamp_free_inputs_and_takes_the_general_path() -> None:
    x = _edge_groups(4, 16, seed=1)[:, :64]
    amax, _ = kquant_qx.first_absmax(x)
    assert kquant_qx._clamp_free_inputs(x, amax, 1, np.empty((2, *x.shape), np.float32)) is None
    scale, levels = kquant_qx.make_qx_quants(x, 1)
    assert levels.min() >= 0 and levels.max() <= 1 and np.isfinite(scale).all()


def _rows_of(groups: np.ndarray, n_cols: int) -> np.ndarray:
    """Element-major groups → rows of ``n_cols`` (groups laid end to end)."""
    return np.ascontiguousarray(groups.T).reshape(-1, n_cols)


@needs_oracle
@pytest.mark.parametrize(
    ("qtype", "nmax", "group"),
    [
        (GGMLType.Q6_K, 32, 16),
        (GGMLType.Q3_K, 4, 16),
        (GGMLType.Q4_0, 8, 32),
        (GGMLType.Q5_0, 16, 32),
    ],
    ids=["Q6_K", "Q3_K", "Q4_0", "Q5_0"],
)
def test_kernels_match_live_ggml_on_groups_at_the_clamp_edges(qtype, nmax, group) -> None:
    rows = _rows_of(_edge_groups(nmax, group, seed=7), 512)
    imatrix = np.random.default_rng(3).lognormal(size=512).astype(np.float32)
    np.testing.assert_array_equal(
        quantize(rows, qtype, imatrix), ORACLE.quantize(qtype, rows, imatrix)
    )
    if qtype is GGMLType.Q6_K:  # the one of these whose search runs without an imatrix too
        np.testing.assert_array_equal(quantize(rows, qtype), ORACLE.quantize(qtype, rows))
