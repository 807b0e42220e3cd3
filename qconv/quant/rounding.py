"""C rounding rules the kernels mirror, as exact float32 NumPy operations.

ggml's quantizers mix three roundings; which one a line uses decides the last bit, so each is named
after the C it mirrors and every kernel imports it from here.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_MAGIC = np.float32(12582912.0)  # 1.5 * 2**23: adding it leaves round-half-even(x) in the mantissa
_MANTISSA = np.int32(0x007FFFFF)
_BIAS = np.int32(0x00400000)


def nearest_int(x: npt.NDArray[np.float32]) -> npt.NDArray[np.int32]:
    """ggml-quants.c ``nearest_int``: float32 add of 1.5*2**23, then the low mantissa bits.

    Round-half-to-even like ``np.rint`` for |x| < 2**22, and, like the C code (whose range assert is
    compiled out), a defined garbage value for inf/NaN instead of an error: inf -> -4194304,
    NaN -> 0. K-quant kernels rely on that when a subnormal block makes an inverse scale overflow.
    """
    shifted = np.add(x, _MAGIC, dtype=np.float32)
    return (shifted.view(np.int32) & _MANTISSA) - _BIAS


def truncate_to_int(x: npt.NDArray[np.float32]) -> npt.NDArray[np.int32]:
    """C's float-to-int cast ``(int)x``: rounds toward zero."""
    return np.trunc(x).astype(np.int32)
