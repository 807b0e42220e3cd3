"""Block quantizers: one module per ggml type, one contract, one registry.

Every kernel module ``qconv.quant.<name>`` exposes

* ``quantize_blocks(blocks)``: float32 ``(n_blocks, block_size)`` → uint8 ``(n_blocks, type_size)``,
  bit-identical to ggml's ``quantize_row_<type>_ref`` for the same float32 input;
* ``dequantize_blocks(data)``: uint8 ``(n_blocks, type_size)`` → float32 ``(n_blocks, block_size)``,
  as ggml's ``dequantize_row_<type>``.

Two optional row-level entry points serve the types whose ggml quantizer looks at a whole row:

* ``quantize_rows(rows)``: float32 ``(n_rows, n_cols)`` → uint8 ``(n_rows, row_nbytes)``, used
  instead of ``quantize_blocks`` when no importance matrix is given, for types whose unweighted
  quantizer is row-based.
* ``quantize_rows_imatrix(rows, imatrix)``: the same with llama-quantize's per-column importance
  weights, float32 ``(n_cols,)`` for one 2-D matrix (one expert's slice for MoE tensors),
  bit-identical to ``ggml_quantize_chunk(type, rows, …, imatrix)``.

``quantize(rows, qtype, imatrix)`` picks among them. The types whose ggml quantizer ignores the
quant weights (F32, F16, BF16, Q8_0) ignore the imatrix here too; any other type without
``quantize_rows_imatrix`` refuses one rather than silently quantizing unweighted.

Kernels vectorize across all blocks they are given; blocks never cross rows, so callers may hand any
whole number of rows at a time. Modules are imported on first use, which keeps ``qconv info`` fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from qconv.errors import QuantizationError
from qconv.gguf.constants import QUANT_SIZES, GGMLType

__all__ = ["KERNEL_MODULES", "can_quantize", "dequantize", "quantize"]

# The registry: which module and functions implement which type. Adding a type is one line here
# plus its module. The float types share one module, so their functions carry the type in the name.
_BLOCK_FUNCTIONS = ("quantize_blocks", "dequantize_blocks")
KERNEL_MODULES: dict[GGMLType, tuple[str, tuple[str, str]]] = {
    GGMLType.F32: ("qconv.quant.float", ("quantize_f32", "dequantize_f32")),
    GGMLType.F16: ("qconv.quant.float", ("quantize_f16", "dequantize_f16")),
    GGMLType.BF16: ("qconv.quant.float", ("quantize_bf16", "dequantize_bf16")),
    GGMLType.Q8_0: ("qconv.quant.q8_0", _BLOCK_FUNCTIONS),
    GGMLType.Q4_0: ("qconv.quant.q4_0", _BLOCK_FUNCTIONS),
    GGMLType.Q4_1: ("qconv.quant.q4_1", _BLOCK_FUNCTIONS),
    GGMLType.Q5_0: ("qconv.quant.q5_0", _BLOCK_FUNCTIONS),
    GGMLType.Q5_1: ("qconv.quant.q5_1", _BLOCK_FUNCTIONS),
    GGMLType.Q2_K: ("qconv.quant.q2_k", _BLOCK_FUNCTIONS),
    GGMLType.Q3_K: ("qconv.quant.q3_k", _BLOCK_FUNCTIONS),
    GGMLType.Q4_K: ("qconv.quant.q4_k", _BLOCK_FUNCTIONS),
    GGMLType.Q5_K: ("qconv.quant.q5_k", _BLOCK_FUNCTIONS),
    GGMLType.Q6_K: ("qconv.quant.q6_k", _BLOCK_FUNCTIONS),
    GGMLType.IQ4_NL: ("qconv.quant.iq4_nl", _BLOCK_FUNCTIONS),
    GGMLType.IQ4_XS: ("qconv.quant.iq4_xs", _BLOCK_FUNCTIONS),
}

BlockFunction = Callable[[npt.NDArray[Any]], npt.NDArray[Any]]
ImatrixFunction = Callable[[npt.NDArray[Any], npt.NDArray[Any]], npt.NDArray[Any]]

# ggml_quantize_chunk passes the quant weights on, but these types' quantizers never read them.
IGNORES_IMATRIX = frozenset({GGMLType.F32, GGMLType.F16, GGMLType.BF16, GGMLType.Q8_0})


def _functions(qtype: GGMLType) -> tuple[BlockFunction, BlockFunction]:
    try:
        module_name, (quantize_name, dequantize_name) = KERNEL_MODULES[qtype]
    except KeyError:
        raise QuantizationError(f"qconv has no kernel for ggml type {qtype.name}") from None
    module = importlib.import_module(module_name)
    return getattr(module, quantize_name), getattr(module, dequantize_name)


def _row_function(qtype: GGMLType, name: str) -> Any:
    module_name = KERNEL_MODULES[qtype][0]
    return getattr(importlib.import_module(module_name), name, None)


def can_quantize(qtype: GGMLType) -> bool:
    """True when qconv can write tensors of ``qtype``."""
    return qtype in KERNEL_MODULES


def quantize(
    rows: npt.NDArray[np.float32],
    qtype: GGMLType,
    imatrix: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.uint8]:
    """Quantize float32 ``rows`` of shape ``(n_rows, n_cols)`` to ``(n_rows, row_nbytes)`` bytes.

    ``imatrix`` holds the importance weight of each column (float32, shape ``(n_cols,)``), as
    llama-quantize hands ggml for one matrix; None quantizes as ggml does without one.

    Raises:
        QuantizationError: the row length is not a multiple of the type's block size, the imatrix
            does not have one weight per column, or the type has no weighted kernel.
    """
    n_rows, n_cols = rows.shape
    block_size, type_size = QUANT_SIZES[qtype]
    if n_cols % block_size:
        raise QuantizationError(
            f"row length {n_cols} is not a multiple of {qtype.name}'s block size {block_size}"
        )
    quantize_blocks, _ = _functions(qtype)
    row_nbytes = n_cols // block_size * type_size
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    if imatrix is not None and qtype not in IGNORES_IMATRIX:
        if imatrix.shape != (n_cols,):
            raise QuantizationError(
                f"importance matrix has shape {imatrix.shape}, rows have {n_cols} columns"
            )
        weighted: ImatrixFunction | None = _row_function(qtype, "quantize_rows_imatrix")
        if weighted is None:
            raise QuantizationError(f"qconv has no importance-weighted kernel for {qtype.name}")
        packed = weighted(rows, np.ascontiguousarray(imatrix, dtype=np.float32))
    elif (row_based := _row_function(qtype, "quantize_rows")) is not None:
        packed = row_based(rows)
    else:
        blocks = rows.reshape(-1, block_size)
        packed = quantize_blocks(blocks).reshape(n_rows, row_nbytes)
    assert packed.shape == (n_rows, row_nbytes), (qtype, packed.shape)
    return packed


def dequantize(
    data: npt.NDArray[np.uint8], qtype: GGMLType, n_cols: int
) -> npt.NDArray[np.float32]:
    """Decode ``(n_rows, row_nbytes)`` bytes of ``qtype`` back to float32 ``(n_rows, n_cols)``."""
    type_size = QUANT_SIZES[qtype][1]
    _, dequantize_blocks = _functions(qtype)
    blocks = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1, type_size)
    values = dequantize_blocks(blocks)
    return values.reshape(-1, n_cols)
