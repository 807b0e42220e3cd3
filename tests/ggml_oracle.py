"""ctypes access to ggml's own C quantizers (libggml-base.so built by tools/build_ggml.sh).

This is the independent implementation qconv's kernels are proven against: the golden files under
tests/golden/quant are produced through it (tools/make_quant_goldens.py), and the interop tests call
it live. It is test code only; qconv/ never imports it.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

from qconv.gguf.constants import QUANT_SIZES, GGMLType


class _TypeTraits(ctypes.Structure):
    _fields_ = [
        ("type_name", ctypes.c_char_p),
        ("blck_size", ctypes.c_int64),
        ("blck_size_interleave", ctypes.c_int64),
        ("type_size", ctypes.c_size_t),
        ("is_quantized", ctypes.c_bool),
        ("to_float", ctypes.c_void_p),
        ("from_float_ref", ctypes.c_void_p),
    ]


_TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64)


def find_libggml() -> Path | None:
    """The oracle library: $QCONV_LIBGGML, else the tools/build_ggml.sh cache, else None."""
    explicit = os.environ.get("QCONV_LIBGGML")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("QCONV_CACHE", Path.home() / ".cache" / "qconv"))
    found = sorted(cache.glob("llama-cpp-python-*/build/bin/libggml-base.so"))
    return found[-1] if found else None


class GGML:
    """The two ggml entry points the tests need: quantize a chunk of rows, dequantize a row."""

    def __init__(self, path: Path) -> None:
        self.lib = ctypes.CDLL(str(path))
        self.lib.ggml_quantize_chunk.restype = ctypes.c_size_t
        self.lib.ggml_quantize_chunk.argtypes = [
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_float),
            ctypes.c_void_p,
            ctypes.c_int64,
            ctypes.c_int64,
            ctypes.c_int64,
            ctypes.POINTER(ctypes.c_float),
        ]
        self.lib.ggml_get_type_traits.restype = ctypes.POINTER(_TypeTraits)
        self.lib.ggml_get_type_traits.argtypes = [ctypes.c_int]

    def quantize(
        self, qtype: GGMLType, rows: np.ndarray, imatrix: np.ndarray | None = None
    ) -> np.ndarray:
        """ggml_quantize_chunk over float32 (n_rows, n_cols), with or without per-column weights."""
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        weights = None
        if imatrix is not None:
            imatrix = np.ascontiguousarray(imatrix, dtype=np.float32)
            assert imatrix.shape == (rows.shape[1],), imatrix.shape
            weights = imatrix.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        n_rows, n_cols = rows.shape
        block_size, type_size = QUANT_SIZES[qtype]
        out = np.zeros((n_rows, n_cols // block_size * type_size), dtype=np.uint8)
        written = self.lib.ggml_quantize_chunk(
            int(qtype),
            rows.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            out.ctypes.data_as(ctypes.c_void_p),
            0,
            n_rows,
            n_cols,
            weights,
        )
        assert written == out.nbytes, (written, out.nbytes)
        return out

    def dequantize(self, qtype: GGMLType, data: np.ndarray, n_cols: int) -> np.ndarray:
        """The type's to_float over every row of (n_rows, row_nbytes) bytes."""
        data = np.ascontiguousarray(data, dtype=np.uint8)
        traits = self.lib.ggml_get_type_traits(int(qtype)).contents
        to_float = _TO_FLOAT(traits.to_float)
        out = np.zeros((data.shape[0], n_cols), dtype=np.float32)
        for i in range(data.shape[0]):
            to_float(
                data[i].ctypes.data_as(ctypes.c_void_p),
                out[i].ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                n_cols,
            )
        return out


def load_ggml() -> GGML | None:
    """The oracle if it has been built, else None (tests that need it skip)."""
    path = find_libggml()
    return GGML(path) if path and path.exists() else None
