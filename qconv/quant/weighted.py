"""Importance-weighted quantization of the legacy 32-element types (Q4_0, Q4_1, Q5_0, Q5_1).

Mirrors ggml-quants.c ``quantize_row_q{4,5}_{0,1}_impl``, the path ``ggml_quantize_chunk`` takes
when llama-quantize passes an importance matrix. Per row ``sigma2 = Σ x² / n_per_row`` (a sequential
float32 sum over the whole row), and each element's weight is ``qw[j] * sqrtf(sigma2 + x[j]*x[j])``
with ``qw`` the imatrix entry of its column. Q4_0/Q5_0 then search a signed scale with the weighted
``make_qx_quants`` (rmse_type 1, 19 candidate scales, below); Q4_1/Q5_1 search scale and minimum
with ``make_qkx3_quants(n, nmax, x, w, …, -0.9f, 0.05f, 36, false)``, which for non-NaN input and
non-NULL weights computes exactly what ``make_qkx2_quants`` does (the two C functions differ only in
``max <= min`` versus ``max == min`` and in a NULL-weights fallback), so it reuses the K-quant port
:func:`qconv.quant.kquant_search.make_qkx2_quants`.

Layout: the searches run on *element-major* ``(32, n_blocks)`` arrays so a C loop ``s += f(x[i])``
is ``np.add.reduce`` over axis 0, summed in C's order (see kquant.py). NumPy sums a single column
pairwise instead, so a chunk of one block (or one row) is padded with a zero block (or row).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from qconv.errors import QuantizationError
from qconv.quant import kquant_qx
from qconv.quant.kquant import small_ufunc_buffers

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
I8 = npt.NDArray[np.int8]
BLOCK = 32
# Blocks per chunk, as for the K-quant searches (numpy-kernels.md): the (32, n) work arrays of the
# 19-candidate search stay near L2 while NumPy's per-call cost is amortized.
CHUNK_BLOCKS = 4096


def refuse_non_finite(rows: F32) -> None:
    """Weighted kernels refuse NaN and ±inf: sigma2 and every weight of the row would be NaN/inf,
    where C's float-to-int conversions are undefined.

    Raises:
        QuantizationError: some value is not finite.
    """
    if not np.isfinite(np.add.reduce(rows, axis=None)) and not np.isfinite(rows).all():
        raise QuantizationError(
            "cannot quantize NaN or infinite values with an importance matrix; "
            "clean the tensor or keep it as F16/F32"
        )


def sequential_sum(values: F32) -> F32:
    """Column sums of ``(n, m)`` float32 in row order, as C's ``s += v[i]`` loop (m may be 1)."""
    if values.shape[1] == 1:  # NumPy reduces a single contiguous column pairwise
        values = np.pad(values, ((0, 0), (0, 1)))
        total: F32 = np.add.reduce(values, axis=0)
        return total[:1]
    total = np.add.reduce(values, axis=0)
    return total


def row_sigma2(rows: F32) -> F32:
    """``sum_x2/n_per_row`` per row, with ``sum_x2 += x[j]*x[j]`` summed in element order."""
    squares = np.ascontiguousarray((rows * rows).T)
    return sequential_sum(squares) / np.float32(rows.shape[1])


def quantize_rows(
    rows: F32,
    imatrix: F32,
    type_size: int,
    quantize_chunk: Callable[[F32, F32], U8],
) -> U8:
    """Run ``quantize_chunk(blocks, weights)`` on whole rows at a time, ~CHUNK_BLOCKS blocks each.

    ``blocks`` and ``weights`` are float32 ``(n_blocks, 32)``; the result is
    ``(n_rows, row_bytes)``.

    Raises:
        QuantizationError: the rows hold NaN or ±inf.
    """
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    refuse_non_finite(rows)
    n_rows, n_cols = rows.shape
    per_row = n_cols // BLOCK
    out = np.empty((n_rows, per_row * type_size), dtype=np.uint8)
    step = max(1, CHUNK_BLOCKS // per_row)
    with np.errstate(all="ignore"), small_ufunc_buffers():
        for start in range(0, n_rows, step):
            part = rows[start : start + step]
            weights = np.add(row_sigma2(part)[:, None], part * part)
            np.sqrt(weights, out=weights)
            np.multiply(imatrix, weights, out=weights)
            packed = quantize_chunk(part.reshape(-1, BLOCK), weights.reshape(-1, BLOCK))
            out[start : start + step] = packed.reshape(part.shape[0], -1)
    return out


def element_major(blocks: F32) -> F32:
    """``(n, 32)`` blocks → contiguous ``(32, max(n, 2))``, a zero block appended when n is 1."""
    if blocks.shape[0] == 1:
        blocks = np.concatenate([blocks, np.zeros_like(blocks)])
    return np.ascontiguousarray(blocks.T)


def make_qx_quants(x: F32, w: F32, nmax: int) -> tuple[F32, I8]:
    """ggml ``make_qx_quants(32, nmax, x, L, rmse_type=1, qw=w)`` for every column of ``x``.

    Returns the per-block scale and the levels ``L = l + nmax`` (0..2*nmax-1), element-major. The
    search is the K-quants' (kquant_qx.make_qx_quants), which takes any group length.
    """
    return kquant_qx.make_qx_quants(x, nmax, w)


def block_codes(levels: npt.NDArray[np.int8] | F32, n_blocks: int) -> U8:
    """Element-major levels ``(32, m)`` → block-major uint8 ``(n_blocks, 32)``, padding dropped."""
    return np.ascontiguousarray(levels[:, :n_blocks].T, dtype=np.uint8)
