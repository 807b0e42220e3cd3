"""Named float32 row sets that stress block quantizers: the inputs of the quantization goldens.

Each set has rows of ``n_cols`` (a multiple of 256, so every block type fits). The adversarial rows
target the traps listed in ../shared/reference/numpy-kernels.md: zero blocks, constant blocks, ties
between +amax and -amax, half-integer ties after scaling, a lone outlier, subnormal-scale blocks,
values near the fp16 maximum and a wide dynamic range inside one block.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

N_COLS = 512
GOLDEN = Path(__file__).parent / "golden" / "quant"
CASE_NAMES = ["gaussian", "bf16_valued", "heavy_tailed", "adversarial"]
IMATRIX_NAMES = ["positive", "with_zeros", "heavy_tailed"]


def float_bits(a: np.ndarray) -> np.ndarray:
    """float32 values as their bit patterns, so comparisons see -0.0 and NaN payloads."""
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


@functools.cache
def _golden_inputs() -> dict[str, np.ndarray]:
    with np.load(GOLDEN / "inputs.npz") as npz:
        return dict(npz)


@functools.cache
def _golden_imatrices() -> dict[str, np.ndarray]:
    with np.load(GOLDEN / "imatrices.npz") as npz:
        return dict(npz)


def golden_imatrices() -> dict[str, np.ndarray]:
    """The committed importance matrices of the weighted goldens (make_imatrices() when made)."""
    return _golden_imatrices()


def golden_inputs() -> dict[str, np.ndarray]:
    """The committed inputs of tests/golden/quant (make_cases() as it was when ggml ran on them)."""
    return _golden_inputs()


def _bf16_valued(x: np.ndarray) -> np.ndarray:
    bits = x.astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
    return bits.view(np.float32)


def _adversarial(rng: np.random.Generator, n_cols: int) -> np.ndarray:
    rows = []
    rows.append(np.zeros(n_cols))
    rows.append(np.full(n_cols, 0.5))
    rows.append(np.full(n_cols, -3.25))
    tie = rng.standard_normal(n_cols)
    tie[::32] = 2.0
    tie[1::32] = -2.0  # +amax before -amax in every 32-block
    rows.append(tie)
    tie2 = rng.standard_normal(n_cols)
    tie2[::16] = -2.5
    tie2[5::16] = 2.5  # -amax first
    rows.append(tie2)
    rows.append(np.arange(n_cols) % 17 - 8.0)  # integers: exact half-steps after scaling
    rows.append((np.arange(n_cols) % 33 - 16.0) / 2.0)
    outlier = rng.standard_normal(n_cols) * 0.01
    outlier[::64] = 50.0
    rows.append(outlier)
    neg_outlier = rng.standard_normal(n_cols) * 0.01
    neg_outlier[7::256] = -80.0
    rows.append(neg_outlier)
    rows.append(rng.standard_normal(n_cols) * 1e-38)  # subnormal scales
    rows.append(rng.standard_normal(n_cols) * 1e-30)
    rows.append(rng.uniform(-65000.0, 65000.0, n_cols))  # near fp16 max
    rows.append(rng.standard_normal(n_cols) * np.logspace(-20, 3, n_cols))  # wide range
    rows.append(np.abs(rng.standard_normal(n_cols)))  # all positive
    rows.append(-np.abs(rng.standard_normal(n_cols)))  # all negative
    sparse = np.zeros(n_cols)
    sparse[::37] = rng.standard_normal(len(sparse[::37]))
    rows.append(sparse)
    mostly_const = np.full(n_cols, 1.0)
    mostly_const[3::16] = 1.0 + 1e-6
    rows.append(mostly_const)
    return np.array(rows, dtype=np.float32)


def make_cases(seed: int = 0, n_cols: int = N_COLS) -> dict[str, np.ndarray]:
    """All named row sets, float32 (n_rows, n_cols), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    return {
        "gaussian": rng.standard_normal((16, n_cols)).astype(np.float32),
        "bf16_valued": _bf16_valued(rng.standard_normal((8, n_cols)) * 0.02),
        "heavy_tailed": rng.standard_t(3, (8, n_cols)).astype(np.float32),
        "adversarial": _adversarial(rng, n_cols),
    }


def make_imatrices(seed: int = 1, n_cols: int = N_COLS) -> dict[str, np.ndarray]:
    """Per-column importance weights, float32 (n_cols,), shaped like llama-imatrix's Σx²/count.

    ``with_zeros`` has scattered zero columns, a whole zero 32-block and a zero half of a 256
    super-block (columns no calibration token ever activated); ``heavy_tailed`` spans ~10 decades.
    """
    rng = np.random.default_rng(seed)
    positive = rng.uniform(0.05, 5.0, n_cols)
    with_zeros = rng.uniform(0.05, 5.0, n_cols)
    with_zeros[rng.random(n_cols) < 0.25] = 0.0
    with_zeros[32:64] = 0.0
    with_zeros[n_cols - 128 :] = 0.0
    heavy = rng.lognormal(0.0, 2.5, n_cols)
    return {
        "positive": positive.astype(np.float32),
        "with_zeros": with_zeros.astype(np.float32),
        "heavy_tailed": heavy.astype(np.float32),
    }
