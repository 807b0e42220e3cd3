"""Importance-weighted quantization of the legacy 32-element types (Q4_0, Q4_1, Q5_0, Q5_1).

Mirrors ggml-quants.c ``quantize_row_q{4,5}_{0,1}_impl``, the path ``ggml_quantize_chunk`` takes
when llama-quantize passes an importance matrix. Per row ``sigma2 = Σ x² / n_per_row`` (a sequential
float32 sum over the whole row), and each element's weight is ``qw[j] * sqrtf(sigma2 + x[j]*x[j])``
with ``qw`` the imatrix entry of its column. Q4_0/Q5_0 then search a signed scale with the weighted
``make_qx_quants`` (rmse_type 1, 19 candidate scales, below); Q4_1/Q5_1 search scale and minimum
with ``make_qkx3_quants(n, nmax, x, w, …, -0.9f, 0.05f, 36, false)``, which for non-NaN input and
non-NULL weights computes exactly what ``make_qkx2_quants`` does (the two C functions differ only in
``max <= min`` versus ``max == min`` and in a NULL-weights fallback), so it reuses the K-quant port
:func:`qconv.quant.kquant.make_qkx2_quants`.

Layout: the searches run on *element-major* ``(32, n_blocks)`` arrays so a C loop ``s += f(x[i])``
is ``np.add.reduce`` over axis 0, summed in C's order (see kquant.py). NumPy sums a single column
pairwise instead, so a chunk of one block (or one row) is padded with a zero block (or row).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from qconv.errors import QuantizationError
from qconv.quant.kquant import last_taken, small_ufunc_buffers, sum_products
from qconv.quant.kquant_qx import GROUP_MAX_EPS, first_absmax

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
I8 = npt.NDArray[np.int8]
BLOCK = 32
# Blocks per chunk, as for the K-quant searches (numpy-kernels.md): the (32, n) work arrays of the
# 19-candidate search stay near L2 while NumPy's per-call cost is amortized.
CHUNK_BLOCKS = 4096
_QX_STEPS = [s for s in range(-9, 10) if s != 0]  # make_qx_quants' 18 extra candidate scales
_ZERO = np.float32(0)
_ONE = np.float32(1)


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


@functools.lru_cache(maxsize=8)  # one entry per chunk shape and bound
def _constant(shape: tuple[int, ...], value: int) -> F32:
    """A full constant array: np.minimum/np.maximum with it beat a scalar operand or np.clip."""
    full = np.full(shape, value, dtype=np.float32)
    full.flags.writeable = False
    return full


def _levels(x: F32, iscale: F32, nmax: int, out: F32, reach: float | None = None) -> F32:
    """``MAX(-nmax, MIN(nmax-1, nearest_int(iscale*x)))`` as float32.

    ``|iscale*x| <= (nmax + 1)*(1 + 2u)`` because ``|x| <= |max|`` and only finite input arrives, so
    np.rint is nearest_int here. ``reach`` is ``|iscale*max|`` when one candidate's is known: every
    value lies within reach*(1+2u), so below nmax - 0.5 no clamp can act and below nmax + 0.5 only
    the upper one can (``iscale*max = -reach`` itself rounds to at least -nmax).
    """
    np.multiply(x, iscale, out=out)
    np.rint(out, out=out)
    if reach is not None and reach < nmax - 0.51:
        return out
    np.minimum(out, _constant(out.shape, nmax - 1), out=out)
    if reach is not None and reach < nmax + 0.49:
        return out
    return np.maximum(out, _constant(out.shape, -nmax), out=out)


@functools.lru_cache(maxsize=2)
def _reaches(nmax: int) -> list[np.float32]:
    """C's ``nmax + 0.1f*is`` for is = -9..9 without 0, each rounded to float32."""
    return [np.float32(nmax) + np.float32(0.1) * np.float32(s) for s in _QX_STEPS]


def make_qx_quants(x: F32, w: F32, nmax: int) -> tuple[F32, I8]:
    """ggml ``make_qx_quants(32, nmax, x, L, rmse_type=1, qw=w)`` for every column of ``x``.

    Returns the per-block scale and the levels ``L = l + nmax`` (0..2*nmax-1), element-major. Only
    each candidate's scale and whether it beat the running best are kept; the last winner's levels
    are rebuilt once at the end.
    """
    amax, signed = first_absmax(x)
    zero = amax < GROUP_MAX_EPS
    safe_max = np.where(zero, _ONE, signed)
    wx = w * x
    lev = np.empty_like(x)
    sums = np.empty((2, x.shape[1]), dtype=np.float32)

    def weighted_sums(iscale: F32, reach: float) -> tuple[F32, F32]:
        levels = _levels(x, iscale, nmax, lev, reach)
        sum_products(wx, levels, out=sums[0])  # sumlx += (w*x)*l
        sum_products(w, levels, levels, out=sums[1])  # suml2 += (w*l)*l
        return sums[0], sums[1]

    first_iscale = np.divide(np.float32(-nmax), safe_max, dtype=np.float32)
    sumlx, suml2 = weighted_sums(first_iscale, nmax)
    scale = np.where(suml2 != 0, sumlx / suml2, _ZERO)
    best = scale * sumlx
    reach = _reaches(nmax)
    cand_scales = np.empty((len(reach), x.shape[1]), dtype=np.float32)
    taken = np.zeros(cand_scales.shape, dtype=np.bool_)
    for k, step_reach in enumerate(reach):
        iscale = np.divide(-step_reach, safe_max, dtype=np.float32)
        sumlx, suml2 = weighted_sums(iscale, float(step_reach))
        better = np.greater(sumlx * sumlx, best * suml2, out=taken[k])
        better &= suml2 > 0
        if not better.any():
            continue
        cand_scale = np.divide(sumlx, suml2, out=cand_scales[k])
        best = np.where(better, cand_scale * sumlx, best)
    won, last = last_taken(taken)
    reaches = np.array(reach, dtype=np.float32)
    best_iscale = np.where(won, -reaches[last] / safe_max, first_iscale)
    scale = np.where(won, cand_scales[last, np.arange(x.shape[1])], scale)
    levels = _levels(x, best_iscale, nmax, lev).astype(np.int8) + np.int8(nmax)
    levels *= ~zero  # C returns L = 0 for all-zero blocks
    return np.where(zero, _ZERO, scale).astype(np.float32), levels


def block_codes(levels: npt.NDArray[np.int8] | F32, n_blocks: int) -> U8:
    """Element-major levels ``(32, m)`` → block-major uint8 ``(n_blocks, 32)``, padding dropped."""
    return np.ascontiguousarray(levels[:, :n_blocks].T, dtype=np.uint8)
