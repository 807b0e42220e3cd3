"""GGUF / ggml constants: the only place the format's numbers live.

Everything that knows a type id, a block size, a value-type width or a well-known key name reads it
from here: the writer's byte counts, the reader's bounds checks, the planner's fallbacks and the
kernels' assertions. Facts come from ggml.h, gguf.h and llama.h (see docs/format.md).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
GGUF_READABLE_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
GGML_QNT_VERSION = 2
# ggml's GGML_MAX_NAME is 64 including the terminating NUL, so a name holds at most 63 bytes.
MAX_TENSOR_NAME_BYTES = 63
MAX_DIMS = 4

QK_K = 256  # super-block size of the K-quants
QK = 32  # block size of the legacy quants (Q4_0 … Q8_0)


class GGMLType(IntEnum):
    """ggml tensor type ids (ggml.h, enum ggml_type)."""

    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q8_1 = 9
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    Q8_K = 15
    IQ2_XXS = 16
    IQ2_XS = 17
    IQ3_XXS = 18
    IQ1_S = 19
    IQ4_NL = 20
    IQ3_S = 21
    IQ2_S = 22
    IQ4_XS = 23
    I8 = 24
    I16 = 25
    I32 = 26
    I64 = 27
    F64 = 28
    IQ1_M = 29
    BF16 = 30
    TQ1_0 = 34
    TQ2_0 = 35
    MXFP4 = 39
    NVFP4 = 40
    Q1_0 = 41
    Q2_0 = 42


# (block_size, type_size): elements per block and bytes per block, for every ggml type.
QUANT_SIZES: dict[GGMLType, tuple[int, int]] = {
    GGMLType.F32: (1, 4),
    GGMLType.F16: (1, 2),
    GGMLType.Q4_0: (QK, 2 + QK // 2),
    GGMLType.Q4_1: (QK, 2 + 2 + QK // 2),
    GGMLType.Q5_0: (QK, 2 + 4 + QK // 2),
    GGMLType.Q5_1: (QK, 2 + 2 + 4 + QK // 2),
    GGMLType.Q8_0: (QK, 2 + QK),
    GGMLType.Q8_1: (QK, 4 + QK),
    GGMLType.Q2_K: (QK_K, 2 + 2 + QK_K // 16 + QK_K // 4),
    GGMLType.Q3_K: (QK_K, 2 + QK_K // 4 + QK_K // 8 + 12),
    GGMLType.Q4_K: (QK_K, 2 + 2 + 12 + QK_K // 2),
    GGMLType.Q5_K: (QK_K, 2 + 2 + 12 + QK_K // 2 + QK_K // 8),
    GGMLType.Q6_K: (QK_K, 2 + QK_K // 16 + 3 * QK_K // 4),
    GGMLType.Q8_K: (QK_K, 4 + QK_K + QK_K // 8),
    GGMLType.IQ2_XXS: (QK_K, 2 + QK_K // 4),
    GGMLType.IQ2_XS: (QK_K, 2 + QK_K // 4 + QK_K // 32),
    GGMLType.IQ3_XXS: (QK_K, 2 + QK_K // 4 + QK_K // 8),
    GGMLType.IQ1_S: (QK_K, 2 + QK_K // 8 + QK_K // 16),
    GGMLType.IQ4_NL: (32, 2 + 16),
    GGMLType.IQ3_S: (QK_K, 2 + QK_K // 4 + QK_K // 8 + QK_K // 32 + 4),
    GGMLType.IQ2_S: (QK_K, 2 + QK_K // 4 + QK_K // 16),
    GGMLType.IQ4_XS: (QK_K, 2 + 2 + QK_K // 2 + QK_K // 64),
    GGMLType.I8: (1, 1),
    GGMLType.I16: (1, 2),
    GGMLType.I32: (1, 4),
    GGMLType.I64: (1, 8),
    GGMLType.F64: (1, 8),
    GGMLType.IQ1_M: (QK_K, QK_K // 8 + QK_K // 16 + QK_K // 32),
    GGMLType.BF16: (1, 2),
    GGMLType.TQ1_0: (QK_K, 2 + 4 * 13),
    GGMLType.TQ2_0: (QK_K, 2 + 64),
    GGMLType.MXFP4: (32, 1 + 16),
    GGMLType.NVFP4: (64, 4 + 32),
    GGMLType.Q1_0: (128, 2 + 16),
    GGMLType.Q2_0: (64, 2 + 16),
}


class GGUFValueType(IntEnum):
    """Metadata value type ids (gguf.h, enum gguf_type)."""

    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


# struct formats of the fixed-width value types (little-endian). STRING and ARRAY are variable.
VALUE_STRUCT: dict[GGUFValueType, struct.Struct] = {
    GGUFValueType.UINT8: struct.Struct("<B"),
    GGUFValueType.INT8: struct.Struct("<b"),
    GGUFValueType.UINT16: struct.Struct("<H"),
    GGUFValueType.INT16: struct.Struct("<h"),
    GGUFValueType.UINT32: struct.Struct("<I"),
    GGUFValueType.INT32: struct.Struct("<i"),
    GGUFValueType.FLOAT32: struct.Struct("<f"),
    GGUFValueType.BOOL: struct.Struct("<?"),
    GGUFValueType.UINT64: struct.Struct("<Q"),
    GGUFValueType.INT64: struct.Struct("<q"),
    GGUFValueType.FLOAT64: struct.Struct("<d"),
}

# NumPy dtypes of the fixed-width value types, for reading long arrays without a Python loop.
VALUE_NUMPY_DTYPE: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<u1",
    GGUFValueType.INT8: "<i1",
    GGUFValueType.UINT16: "<u2",
    GGUFValueType.INT16: "<i2",
    GGUFValueType.UINT32: "<u4",
    GGUFValueType.INT32: "<i4",
    GGUFValueType.FLOAT32: "<f4",
    GGUFValueType.BOOL: "u1",
    GGUFValueType.UINT64: "<u8",
    GGUFValueType.INT64: "<i8",
    GGUFValueType.FLOAT64: "<f8",
}

INTEGER_VALUE_RANGES: dict[GGUFValueType, tuple[int, int]] = {
    GGUFValueType.UINT8: (0, 2**8 - 1),
    GGUFValueType.INT8: (-(2**7), 2**7 - 1),
    GGUFValueType.UINT16: (0, 2**16 - 1),
    GGUFValueType.INT16: (-(2**15), 2**15 - 1),
    GGUFValueType.UINT32: (0, 2**32 - 1),
    GGUFValueType.INT32: (-(2**31), 2**31 - 1),
    GGUFValueType.UINT64: (0, 2**64 - 1),
    GGUFValueType.INT64: (-(2**63), 2**63 - 1),
}


class LlamaFileType(IntEnum):
    """`general.file_type` values (llama.h, enum llama_ftype)."""

    ALL_F32 = 0
    MOSTLY_F16 = 1
    MOSTLY_Q4_0 = 2
    MOSTLY_Q4_1 = 3
    MOSTLY_Q8_0 = 7
    MOSTLY_Q5_0 = 8
    MOSTLY_Q5_1 = 9
    MOSTLY_Q2_K = 10
    MOSTLY_Q3_K_S = 11
    MOSTLY_Q3_K_M = 12
    MOSTLY_Q3_K_L = 13
    MOSTLY_Q4_K_S = 14
    MOSTLY_Q4_K_M = 15
    MOSTLY_Q5_K_S = 16
    MOSTLY_Q5_K_M = 17
    MOSTLY_Q6_K = 18
    MOSTLY_IQ4_NL = 25
    MOSTLY_IQ4_XS = 30
    MOSTLY_BF16 = 32


class Keys:
    """Metadata key names qconv writes or reads."""

    ARCHITECTURE = "general.architecture"
    TYPE = "general.type"
    NAME = "general.name"
    FILE_TYPE = "general.file_type"
    QUANTIZATION_VERSION = "general.quantization_version"
    ALIGNMENT = "general.alignment"
    # What llama-quantize records about the importance matrix it used (tools/quantize/quantize.cpp).
    QUANTIZE_IMATRIX_FILE = "quantize.imatrix.file"
    QUANTIZE_IMATRIX_DATASET = "quantize.imatrix.dataset"
    QUANTIZE_IMATRIX_N_ENTRIES = "quantize.imatrix.entries_count"
    QUANTIZE_IMATRIX_N_CHUNKS = "quantize.imatrix.chunks_count"
    # What llama-imatrix writes into a GGUF imatrix (common/imatrix-loader.h).
    IMATRIX_DATASETS = "imatrix.datasets"
    IMATRIX_CHUNK_COUNT = "imatrix.chunk_count"
    IMATRIX_CHUNK_SIZE = "imatrix.chunk_size"


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One tensor-index entry of a GGUF file, as the writer plans it and the reader finds it.

    ``shape`` is NumPy order (rows…, cols); ``offset`` counts from the start of the data section.
    """

    name: str
    shape: tuple[int, ...]
    qtype: GGMLType
    offset: int
    nbytes: int


def padded(n: int, alignment: int) -> int:
    """Round ``n`` up to a multiple of ``alignment``."""
    return (n + alignment - 1) // alignment * alignment


def row_nbytes(qtype: GGMLType, n_cols: int) -> int:
    """Bytes of one row of ``n_cols`` elements stored as ``qtype`` (n_cols must fit the block)."""
    block_size, type_size = QUANT_SIZES[qtype]
    if n_cols % block_size:
        raise ValueError(f"row length {n_cols} is not a multiple of {qtype.name}'s block size")
    return n_cols // block_size * type_size


def tensor_nbytes(qtype: GGMLType, shape: tuple[int, ...]) -> int:
    """Bytes of a whole tensor of NumPy ``shape`` (rows, …, cols) stored as ``qtype``."""
    n_rows = 1
    for dim in shape[:-1]:
        n_rows *= dim
    return n_rows * row_nbytes(qtype, shape[-1] if shape else 1)


def fits_block(qtype: GGMLType, n_cols: int) -> bool:
    """True when a row of ``n_cols`` elements splits into whole ``qtype`` blocks."""
    return n_cols % QUANT_SIZES[qtype][0] == 0
