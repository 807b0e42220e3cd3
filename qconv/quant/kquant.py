"""Pieces the K-quant kernels share: rounding, in-order sums, fp16 words, chunking.

The make_qkx2_quants search itself (Q4_K, Q5_K, Q2_K, Q4_1, Q5_1) is in qconv.quant.kquant_search;
the Q3_K/Q6_K kernels import the generic helpers too. These public names are stable:
``round_levels`` / ``round_bounded``, ``last_winner`` and ``last_taken`` (element-major arrays,
below), ``fp16_bits`` / ``fp16_to_f32``, ``u16_bytes``, ``max_positive``, ``quantize_in_chunks``,
``small_ufunc_buffers`` and ``sum_products``. The 6-bit scale packing, the super-block search and
decoding of Q4_K/Q5_K/Q2_K are in qconv.quant.kquant_k4.

Layout: the search runs on *element-major* arrays ``(n, n_sub)``, element index first and one column
per sub-block. A C loop ``s += f(x[i])`` then becomes ``np.add.reduce(..., axis=0)``, which NumPy
evaluates strictly in order, so float32 sums match C bit for bit (``np.sum`` along the contiguous
axis is pairwise and does not).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt

from qconv.errors import QuantizationError
from qconv.quant.rounding import nearest_int

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

_MAGIC = np.float32(12582912.0)  # 1.5 * 2**23, as in nearest_int
_SAFE = np.float32(4194304.0)  # 2**22: below it np.rint is exactly nearest_int
_ZERO = np.float32(0.0)


def fp16_bits(x: F32) -> npt.NDArray[np.uint16]:
    """GGML_FP32_TO_FP16 as bits: round-to-nearest-even, subnormals kept, overflow to inf."""
    return np.asarray(x, dtype=np.float32).astype(np.float16).view(np.uint16)


def fp16_to_f32(bits: npt.NDArray[np.uint16]) -> F32:
    """GGML_FP16_TO_FP32: exact widening of fp16 bit patterns."""
    return np.asarray(bits, dtype=np.uint16).view(np.float16).astype(np.float32)


def u16_bytes(bits: npt.NDArray[np.uint16]) -> U8:
    """Little-endian bytes of a (n_blocks,) uint16 array as (n_blocks, 2) uint8."""
    return np.asarray(bits, dtype="<u2").reshape(-1, 1).view(np.uint8)


def max_positive(values: F32) -> F32:
    """C's ``float m = 0; if (v > m) m = v;`` over the last axis: +0.0 when nothing is positive.

    Written out because ``np.max`` with a 0 start could hand back -0.0, which fp16 stores as 0x8000.
    """
    top = np.max(values, axis=-1)
    return np.where(top > 0, top, _ZERO).astype(np.float32)


@functools.lru_cache(maxsize=4)  # a few chunk shapes; each entry is 2 small arrays
def _limits(shape: tuple[int, ...], nmax: int) -> tuple[F32, F32]:
    """Full arrays of 0 and nmax: np.maximum/np.minimum run ~8x slower with a scalar operand."""
    low = np.zeros(shape, dtype=np.float32)
    high = np.full(shape, nmax, dtype=np.float32)
    low.flags.writeable = False
    high.flags.writeable = False
    return low, high


def round_levels(v: F32, nmax: int, lo: F32, hi: F32) -> F32:
    """``MAX(0, MIN(nmax, nearest_int(v)))`` in place on ``v``, returned as float32 levels.

    ``lo``/``hi`` bound ``v`` per column (either order). When every bound is finite and below 2**22
    in magnitude, np.rint equals nearest_int, and each clamp side runs only if some value can cross
    it. Otherwise (subnormal blocks make inverse scales overflow to inf) the exact integer
    emulation runs, giving C's 0 for inf/NaN.
    """
    floor = min(float(np.minimum.reduce(lo, axis=None)), float(np.minimum.reduce(hi, axis=None)))
    ceiling = max(float(np.maximum.reduce(lo, axis=None)), float(np.maximum.reduce(hi, axis=None)))
    return round_bounded(v, nmax, floor, ceiling)


def round_bounded(v: F32, nmax: int, floor: float, ceiling: float) -> F32:
    """round_levels given the lowest and highest value ``v`` can hold (NaN when unknown)."""
    if floor > -_SAFE and ceiling < _SAFE:  # False for NaN, as wanted
        low, high = _limits(v.shape, nmax)
        np.rint(v, out=v)
        below = floor < -0.5  # rint(-0.5) is -0.0, which every later use treats as level 0
        above = ceiling >= nmax + 0.5
        if below and above:  # np.clip with scalar bounds: ~0.7x the two passes below
            return np.clip(v, 0, nmax, out=v)
        if below:
            np.maximum(v, low, out=v)
        if above:
            np.minimum(v, high, out=v)
        return v
    v[...] = np.clip(nearest_int(v), 0, nmax)
    return v


def _einsum_is_sequential() -> bool:
    """Whether ``np.einsum`` sums ``(a*b)*c`` over the leading axis as C does: in order, unfused.

    NumPy's einsum kernels use multiply-add intrinsics, which fuse where the build's baseline has
    FMA (aarch64 NEON, say); there ``sum_products`` falls back to ufuncs. Probes, per column:
    ``-(1 + 2**-11) + a*a`` with a = 1 + 2**-12 is 0 unfused but 2**-24 fused, and
    ``1e8 + 1 - 1e8`` is 0 only when summed in order. Run once, on contiguous (rows, 64) arrays.
    """
    a, c = 1 + 2**-12, -(1 + 2**-11)

    def rows(*values: float) -> F32:
        return np.repeat(np.array(values, dtype=np.float32)[:, None], 64, axis=1)

    probes = (
        (rows(c, a), rows(1, a)),
        (rows(c, a), rows(1, 1), rows(1, a)),
        (rows(1e8, 1, -1e8), rows(1, 1, 1)),
        (rows(1e8, 1, -1e8), rows(1, 1, 1), rows(1, 1, 1)),
    )
    out = np.empty(64, dtype=np.float32)
    return all(not np.einsum(",".join(["ij"] * len(p)) + "->j", *p, out=out).any() for p in probes)


_SEQUENTIAL_EINSUM = _einsum_is_sequential()
_SPECS = {2: "ij,ij->j", 3: "ij,ij,ij->j"}


def sum_products(*factors: F32, out: F32) -> F32:
    """``out[j] = Σ_i ((f0[i,j] * f1[i,j]) * f2[i,j])`` from 0 in order of i, float32, unfused.

    C's ``s = 0; for (i...) s += w*l*x[i];`` over element-major arrays, for two or three factors
    of one contiguous shape. ``np.einsum`` does it in about 1.5 passes over memory where the
    multiply-then-reduce ufuncs take 2 (two factors) or 4 (three) and a scratch array. With a
    single column einsum's inner loop runs along the summed axis with several SIMD accumulators,
    which is not C's order, so that case takes the ufunc loop too.
    """
    if _SEQUENTIAL_EINSUM and out.shape[0] > 1:
        np.einsum(_SPECS[len(factors)], *factors, out=out)
        return out
    prod = factors[0] * factors[1]
    for factor in factors[2:]:
        np.multiply(prod, factor, out=prod)
    out[...] = 0  # C starts from +0.0: a sum of -0.0 terms stays +0.0
    for row in prod:
        np.add(out, row, out=out)
    return out


def last_taken(taken: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.intp]]:
    """Per column of ``taken`` (candidates, columns): whether any row won, and the last that did.

    Where nothing won the index is -1, a valid row to gather from, for the caller to mask with the
    first result. Row k scores k + 1 where it won and a max-reduce finds the last win (np.argmax
    along axis 0 measured ~10x slower).
    """
    ranks = np.arange(1, taken.shape[0] + 1, dtype=np.min_scalar_type(taken.shape[0]))[:, None]
    score = np.maximum.reduce(taken.view(np.uint8) * ranks, axis=0)
    return score > 0, score.astype(np.intp) - 1


def last_winner(
    wins: list[tuple[F32, ...]], takes: list[npt.NDArray[np.bool_]], start: tuple[F32, ...]
) -> tuple[F32, ...]:
    """Per column, the values recorded at the last candidate that won there, else ``start``."""
    if not wins:
        return start
    won, last = last_taken(np.stack(takes))
    cols = np.arange(last.shape[0])
    return tuple(
        np.where(won, np.stack(values)[last, cols], first)
        for values, first in zip(zip(*wins, strict=True), start, strict=True)
    )


# Q4_K / Q5_K pack eight 6-bit scales sc_j and mins m_j into 12 bytes (inverse of get_scale_min_k4):
#
#   byte:   0..3             4..7             8..11
#   bits:   SSssssss         MMmmmmmm         mmmmssss
#           sc_j (j<4)       m_j (j<4)        low nibbles of sc_{j+4} (ssss) and m_{j+4} (mmmm)
#           SS = sc_{j+4}>>4 MM = m_{j+4}>>4
_BUFSIZE = 1024  # elements; see small_ufunc_buffers


@contextlib.contextmanager
def small_ufunc_buffers() -> Iterator[None]:
    """Run with NumPy's ufunc buffer at 1024 elements instead of 8192, restoring it afterwards.

    With rows shorter than the buffer, a ``(n, N) op (N,)`` broadcast goes through NumPy's
    buffered path, ~1.5x slower than the plain inner loop (0.35 vs 0.22 ns per element measured
    at N = 3072); at or below the row length it takes the fast path. The search's broadcasts
    against per-column scales are a quarter of its full-array passes.
    """
    old = np.setbufsize(_BUFSIZE)
    try:
        yield
    finally:
        np.setbufsize(old)


def quantize_in_chunks(
    blocks: F32, type_size: int, chunk: int, quantize_chunk: Callable[[F32], U8]
) -> U8:
    """Run ``quantize_chunk`` over ``chunk`` blocks at a time into one (n_blocks, type_size) array.

    Chunking is the main speed knob of these kernels: big enough to amortize NumPy's per-call cost,
    small enough that the search's working arrays stay in cache.

    Raises:
        QuantizationError: a block holds NaN. C's running min/max compare with a strict < or >,
            which skips a NaN unless it comes first, and the float-to-int conversions of NaN are
            undefined: no NumPy kernel can promise ggml's bytes for it, so it is refused, as the
            legacy kernels do. (±inf and subnormal blocks are fine: their C handling is mirrored.)
    """
    blocks = np.ascontiguousarray(blocks, dtype=np.float32)
    out = np.empty((blocks.shape[0], type_size), dtype=np.uint8)
    with np.errstate(all="ignore"), small_ufunc_buffers():
        for start in range(0, blocks.shape[0], chunk):
            part = blocks[start : start + chunk]
            if np.isnan(part).any():
                raise QuantizationError(
                    "cannot quantize NaN values: ggml's output for NaN is undefined, so clean the "
                    "tensor or keep it as F16/F32"
                )
            out[start : start + chunk] = quantize_chunk(part)
    return out
