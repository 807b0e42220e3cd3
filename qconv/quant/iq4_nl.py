"""IQ4_NL: 32 weights as 4-bit indices into a fixed non-linear grid, one fp16 scale (18 bytes).

Mirrors ggml-quants.c ``quantize_iq4_nl`` (``quantize_row_iq4_nl_impl`` with ntry = 7) and
``dequantize_row_iq4_nl``::

    byte  0      1      2      3   ...   17
        [ d (fp16 LE) ][ qs[0]  qs[1] ... qs[15] ]
    qs[j] = q[j] | q[j + 16] << 4        low nibble: first half of the block, high nibble: second
    x[j] ≈ d * kvalues_iq4nl[q[j]]        kvalues_iq4nl = -127 -104 -83 -65 -49 -35 -22 -10
                                                           1   13  25  38  53  69  89 113

Quantization is always weighted: by ``w = qw[j] * sqrtf(sigma2 + x[j]²)`` with an importance
matrix (``sigma2 = 2 Σ x² / 32`` over the block), else by ``w = x[j]²``. From ``d = max/127`` and
then ``1/d = (t - 127)/max`` for the 15 tries t = -7..7, each element takes the nearest grid index
of ``x/d`` (``best_index_int8``) and the weighted least-squares scale ``Σ w q x / Σ w q²`` wins if
it improves ``(Σ w q x)² / Σ w q²``; the indices are then recomputed with ``1/d`` of the winner.
This is what llama-quantize writes (``ggml_quantize_chunk``); ggml's ``quantize_row_iq4_nl_ref``
runs a single try instead and is not used for model files.

This module also holds the scale search IQ4_XS shares (``search_scales``, ``best_index``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from qconv.gguf.constants import QUANT_SIZES, GGMLType
from qconv.quant import weighted
from qconv.quant.float import fp16_values, put_fp16
from qconv.quant.kquant import small_ufunc_buffers, sum_products
from qconv.quant.kquant_qx import GROUP_MAX_EPS, first_absmax
from qconv.quant.q4_0 import byte_blocks, pack_nibbles, unpack_nibbles

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
KVALUES = np.array(
    [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], dtype=np.int8
)
_GRID = KVALUES.astype(np.float32)
_NTRY = 7
CHUNK_BLOCKS = 4096  # blocks of 32 per search chunk: as for the other 32-element searches
_TYPE_SIZE = QUANT_SIZES[GGMLType.IQ4_NL][1]
_ZERO = np.float32(0)
_ONE = np.float32(1)


def _exact_best_index(al: F32) -> npt.NDArray[np.intp]:
    """ggml ``best_index_int8(16, kvalues_iq4nl, al)`` elementwise, for any float32 input.

    ``searchsorted`` finds the grid interval [v[mu-1], v[mu]) holding ``al`` (the bisection's
    result); C then picks ``mu-1`` iff ``al - v[mu-1] < v[mu] - al``, so a tie goes up. With mu
    clamped to 1..15 the same comparison also gives C's answers outside the grid, for ±inf, and
    for NaN (index 15: every comparison with NaN is false).
    """
    mu = np.searchsorted(_GRID, al, side="right")
    np.clip(mu, 1, 15, out=mu)
    below = np.subtract(al, _GRID[mu - 1]) < np.subtract(_GRID[mu], al)
    mu -= below
    return mu


def _thresholds() -> F32:
    """T_k: the smallest float32 for which best_index_int8 answers k+1 rather than k (k = 0..14).

    C's answer is monotone in ``al`` (``al - a`` and ``b - al`` round monotonically), so it is
    the number of thresholds at or below ``al``. Each T_k is found by bisection over the float32
    values between the two grid points, with C's float32 comparison as the predicate.
    """
    found = []
    for a, b in itertools.pairwise(_GRID):
        lo, hi = _ordered(a), _ordered(b)  # predicate false at a, true at b
        while hi - lo > 1:
            mid = (lo + hi) // 2
            f = _from_ordered(mid)
            if not np.float32(f - a) < np.float32(b - f):
                hi = mid
            else:
                lo = mid
        found.append(_from_ordered(hi))
    return np.array([*found, np.inf], dtype=np.float32)  # +inf: no threshold after the last


def _ordered(f: np.float32) -> int:
    """float32 → integer with the same order (sign-magnitude bits to two's complement)."""
    bits = int(np.array(f, dtype=np.float32).view(np.int32))
    return bits if bits >= 0 else -(bits & 0x7FFFFFFF)


def _from_ordered(i: int) -> np.float32:
    bits = i if i >= 0 else (-i) | -0x80000000
    return np.float32(np.array(bits, dtype=np.int32).view(np.float32).item())


_THRESHOLDS = _thresholds()
# Every threshold is a multiple of 1/2 (they are the midpoints of the grid), so the answer depends
# only on floor(2*al): a table over floor(2*al) = -256..255 gives it without any comparison.
assert (np.floor(2 * _THRESHOLDS[:-1]) == 2 * _THRESHOLDS[:-1]).all(), _THRESHOLDS
_HALF_STEPS = np.arange(-256, 256, dtype=np.float32) / np.float32(2)
_INDEX_TABLE = np.searchsorted(_THRESHOLDS, _HALF_STEPS, side="right").astype(np.uint8)
_VALUE_TABLE = _GRID[_INDEX_TABLE]


def _table_keys(al2: F32) -> npt.NDArray[np.int16] | None:
    """``floor(al2) + 256`` clamped to 0..511 for the tables, or None when some value is not finite
    (NaN has its own answer in C, 15, which no table position gives)."""
    floor = np.floor(al2)
    if not np.isfinite(np.add.reduce(floor, axis=None)):
        return None
    np.clip(floor, -256, 255, out=floor)
    keys = floor.astype(np.int16)
    keys += 256
    return keys


def best_index(al: F32) -> npt.NDArray[np.uint8]:
    """ggml ``best_index_int8(16, kvalues_iq4nl, al)`` elementwise (see _exact_best_index).

    Fast path for finite input (~5x searchsorted): one table lookup on ``floor(2*al)``, exact
    since doubling a float32 is exact. Non-finite input takes the exact path.
    """
    keys = _table_keys(np.multiply(al, np.float32(2), dtype=np.float32))
    if keys is None:
        return _exact_best_index(al).astype(np.uint8)
    return _INDEX_TABLE[keys]


def grid_values(x: F32, inv: F32) -> F32:
    """``kvalues_iq4nl[best_index_int8(inv*x)]`` as float32, from ``x*(2*inv)``.

    That equals ``2*(x*inv)`` bit for bit (scaling by 2 is exact) except where ``x*inv`` is
    subnormal and rounds differently, which stays in the bucket of 0, far from every threshold;
    overflow to inf sends the chunk to the exact path. It saves the doubling pass.
    """
    doubled = np.multiply(inv, np.float32(2), dtype=np.float32)
    keys = _table_keys(np.multiply(x, doubled, dtype=np.float32))
    if keys is None:
        return _GRID[_exact_best_index(np.multiply(x, inv, dtype=np.float32))]
    return _VALUE_TABLE[keys]


def _sums(x: F32, w: F32, inv: F32) -> tuple[F32, F32]:
    """``Σ (w*q)*x`` and ``Σ (w*q)*q`` in element order for ``q = kvalues[best_index(inv*x)]``."""
    q = grid_values(x, inv)
    sums = np.empty((2, x.shape[1]), dtype=np.float32)
    sum_products(w, q, x, out=sums[0])
    sum_products(w, q, q, out=sums[1])
    return sums[0], sums[1]


def search_scales(x: F32, w: F32) -> F32:
    """The per-block scale of ``quantize_row_iq4_nl_impl``'s search (``scales[ib]``), ntry = 7.

    ``x`` and ``w`` are element-major ``(32, n)``. Blocks with ``amax < GROUP_MAX_EPS`` get 0.
    The running best is carried candidate by candidate (per-block vectors only), as in C.
    """
    amax, signed = first_absmax(x)
    zero = amax < GROUP_MAX_EPS
    safe_max = np.where(zero, _ONE, signed)
    d = np.divide(np.negative(safe_max), np.float32(KVALUES[0]), dtype=np.float32)
    sumqx, sumq2 = _sums(x, w, np.divide(_ONE, d, dtype=np.float32))
    d = np.where(sumq2 > 0, sumqx / sumq2, _ZERO)
    best = d * sumqx
    for itry in range(-_NTRY, _NTRY + 1):
        inv = np.divide(np.float32(itry + int(KVALUES[0])), safe_max, dtype=np.float32)
        sumqx, sumq2 = _sums(x, w, inv)
        better = sumqx * sumqx > best * sumq2
        better &= sumq2 > 0
        if better.any():
            d = np.where(better, sumqx / sumq2, d)
            best = np.where(better, d * sumqx, best)
    return np.where(zero, _ZERO, d).astype(np.float32)


def block_weights(x: F32, qw: F32 | None, super_block: int) -> F32:
    """The weights of quantize_row_iq4_nl_impl, block-major ``(n, super_block)`` like ``x``, ``qw``.

    ``qw * sqrtf(sigma2 + x²)`` with ``sigma2 = Σ x² * (2/super_block)`` per super-block when an
    importance matrix is given, else ``x²``.
    """
    squares: F32 = x * x
    if qw is None:
        return squares
    sigma2 = weighted.sequential_sum(np.ascontiguousarray(squares.T))
    sigma2 *= np.float32(2.0 / super_block)
    weights = np.add(sigma2[:, None], squares)
    np.sqrt(weights, out=weights)
    weights *= qw
    return weights


def quantize_super_blocks(
    rows: F32,
    imatrix: F32 | None,
    super_block: int,
    type_size: int,
    chunk: int,
    quantize_chunk: Callable[[F32, F32], U8],
) -> U8:
    """Split rows into super-blocks with their weights and quantize ``chunk`` of them at a time.

    Raises:
        QuantizationError: the values hold NaN or ±inf.
    """
    blocks = np.ascontiguousarray(rows, dtype=np.float32).reshape(-1, super_block)
    weighted.refuse_non_finite(blocks)
    qw = None
    if imatrix is not None:
        per_row = np.asarray(imatrix, dtype=np.float32).reshape(1, -1)
        qw = np.broadcast_to(per_row, (blocks.size // per_row.size, per_row.size))
        qw = qw.reshape(-1, super_block)
    out = np.empty((blocks.shape[0], type_size), dtype=np.uint8)
    with np.errstate(all="ignore"), small_ufunc_buffers():
        for start in range(0, blocks.shape[0], chunk):
            part = blocks[start : start + chunk]
            w = block_weights(part, None if qw is None else qw[start : start + chunk], super_block)
            out[start : start + chunk] = quantize_chunk(part, w)
    return out


def _quantize_chunk(blocks: F32, weights: F32) -> U8:
    n = blocks.shape[0]
    x = weighted.element_major(blocks)
    d = search_scales(x, weighted.element_major(weights))
    inv = np.zeros_like(d)
    np.divide(_ONE, d, out=inv, where=d != 0)  # C: id = d ? 1/d : 0 (inf when d is subnormal)
    codes = best_index(np.multiply(x, inv, dtype=np.float32))
    out = np.empty((n, _TYPE_SIZE), dtype=np.uint8)
    put_fp16(out, 0, d[:n])
    pack_nibbles(np.ascontiguousarray(codes[:, :n].T), out[:, 2:])
    return out


def quantize_blocks(blocks: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """float32 ``(n_blocks, 32)`` → ``(n_blocks, 18)`` IQ4_NL, as quantize_iq4_nl without weights.

    Raises:
        QuantizationError: the blocks hold NaN or ±inf.
    """
    return quantize_super_blocks(blocks, None, 32, _TYPE_SIZE, CHUNK_BLOCKS, _quantize_chunk)


def quantize_rows_imatrix(
    rows: npt.NDArray[np.float32], imatrix: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint8]:
    """float32 ``(n_rows, n_cols)`` with per-column weights → IQ4_NL rows, as quantize_iq4_nl.

    Raises:
        QuantizationError: the rows hold NaN or ±inf.
    """
    packed = quantize_super_blocks(rows, imatrix, 32, _TYPE_SIZE, CHUNK_BLOCKS, _quantize_chunk)
    return packed.reshape(rows.shape[0], rows.shape[1] // 32 * _TYPE_SIZE)  # 0 rows too


def dequantize_blocks(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """``(n_blocks, 18)`` IQ4_NL bytes → float32 ``(n_blocks, 32)``, as dequantize_row_iq4_nl.

    Raises:
        QuantizationError: ``data`` is not ``(n_blocks, 18)``.
    """
    data = byte_blocks(data, _TYPE_SIZE)
    d = fp16_values(data[:, :2])
    values: F32 = _GRID[unpack_nibbles(data[:, 2:])]
    with np.errstate(invalid="ignore"):  # an inf or NaN d decodes to inf/NaN, as in C
        values *= d[:, None]
    return values
