"""A GGUF file (or a split set, given any of its parts) as the source of a conversion.

Opening reads headers only (:func:`qconv.gguf.reader.read_gguf`); tensor rows are read later, a
chunk at a time, from a memory map of the part that holds them, so memory stays flat in the file's
size as for safetensors. Each tensor presents the same ``TensorData`` protocol as a safetensors
tensor (name, dtype, shape, ``read_rows`` → float32), where ``dtype`` is the ggml type name (F32,
F16, BF16, Q8_0, …) and quantized rows are decoded with :func:`qconv.quant.dequantize`.
``raw_rows`` hands out the stored bytes unchanged, for tensors that keep their type: llama-quantize
copies those byte for byte, whatever their type (IQ types included), so only a tensor that must be
decoded needs a type qconv knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from qconv import quant
from qconv.errors import SourceError
from qconv.gguf.constants import QUANT_SIZES, GGMLType, GGUFValueType
from qconv.gguf.metadata import KV
from qconv.gguf.reader import GGUFFile, read_gguf, tensor_data
from qconv.gguf.split import SPLIT_KEYS, read_split_set

__all__ = ["GGUFSource", "GGUFTensor", "is_gguf_file", "open_gguf_source"]

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True, slots=True)
class GGUFTensor:
    """One tensor of a GGUF file, read through a memory map of its rows."""

    gguf: GGUFFile
    index: int

    @property
    def name(self) -> str:
        return self.gguf.tensors[self.index].name

    @property
    def qtype(self) -> GGMLType:
        return self.gguf.tensors[self.index].qtype

    @property
    def dtype(self) -> str:
        return self.qtype.name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.gguf.tensors[self.index].shape

    @property
    def quantized(self) -> bool:
        return QUANT_SIZES[self.qtype][0] > 1

    def check_decodable(self) -> None:
        """Raise SourceError unless qconv can decode this tensor's type to float32."""
        if not quant.can_quantize(self.qtype):
            raise SourceError(
                f"{self.gguf.path}: tensor {self.name!r} is {self.dtype}, which qconv cannot "
                "decode to requantize; start from a file whose tensors are F32, F16, BF16 or a "
                "type qconv writes"
            )

    def raw_rows(self, start: int, stop: int) -> npt.NDArray[np.uint8]:
        """Rows ``start:stop`` as stored (``(rows, row bytes)`` uint8), mapped, not copied."""
        return tensor_data(self.gguf, self.gguf.tensors[self.index])[start:stop]

    def read_rows(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        """Rows ``start:stop`` widened (F16, BF16) or dequantized to float32."""
        n_cols = self.shape[-1] if self.shape else 1
        return quant.dequantize(self.raw_rows(start, stop), self.qtype, n_cols)

    def raw_row_part(self, row: int, col_start: int, col_stop: int) -> npt.NDArray[np.uint8]:
        """The stored bytes of columns ``col_start:col_stop`` of one row (whole blocks)."""
        block_size, type_size = QUANT_SIZES[self.qtype]
        if col_start % block_size or (col_stop % block_size and col_stop != self.shape[-1]):
            raise ValueError(f"columns {col_start}:{col_stop} split a {self.dtype} block")
        first, end = col_start // block_size * type_size, -(-col_stop // block_size) * type_size
        return self.raw_rows(row, row + 1)[:, first:end]

    def read_row_part(self, row: int, col_start: int, col_stop: int) -> npt.NDArray[np.float32]:
        """Part of one row as (1, col_stop - col_start) float32, for rows longer than a chunk."""
        raw = self.raw_row_part(row, col_start, col_stop)
        return quant.dequantize(raw, self.qtype, col_stop - col_start)


@dataclass(frozen=True, slots=True)
class GGUFSource:
    """An opened GGUF model: the first part's metadata (split keys dropped) and every tensor.

    ``tensors`` are in file order, part after part; ``parts`` is one file unless split.
    """

    spec: str
    name: str
    path: Path
    parts: tuple[GGUFFile, ...]
    kvs: tuple[KV, ...]
    tensors: tuple[GGUFTensor, ...]

    def get(self, key: str) -> KV | None:
        return next((kv for kv in self.kvs if kv.key == key), None)

    @property
    def files(self) -> tuple[Path, ...]:
        """Every part's path: the output may not replace any of them."""
        return tuple(part.path for part in self.parts)

    @property
    def root(self) -> Path | None:
        return None  # no companion files (config, tokenizer) are read


def is_gguf_file(spec: str) -> bool:
    """True when ``spec`` names a file that starts with the GGUF magic."""
    path = Path(spec).expanduser()
    try:
        with path.open("rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def _model_name(path: Path, split: bool) -> str:
    stem = path.stem
    if split:  # model-00001-of-00003.gguf -> model
        stem = stem.rsplit("-", 3)[0]
    return stem


def _writable(kv: KV) -> KV:
    """The reader keeps arrays as views of the mapped file; the writer takes Python lists."""
    if kv.vtype != GGUFValueType.ARRAY or isinstance(kv.value, list):
        return kv
    value = kv.value.tolist() if hasattr(kv.value, "tolist") else list(kv.value)
    return KV(kv.key, kv.vtype, value, kv.item_type)


def open_gguf_source(spec: str) -> GGUFSource:
    """Open a GGUF file, or the whole split set when ``spec`` is one of its parts.

    Raises:
        SourceError: the file cannot be read, or holds a tensor type qconv cannot decode.
        FormatError: a corrupt file or a hostile split set (missing part, part of another set,
            wrong split.count).
    """
    path = Path(spec).expanduser()
    first = read_gguf(path)
    split_set = read_split_set(first)
    parts = (first,) if split_set is None else split_set.parts
    tensors = tuple(GGUFTensor(part, i) for part in parts for i in range(len(part.tensors)))
    kvs = tuple(_writable(kv) for kv in parts[0].kvs if kv.key not in SPLIT_KEYS)
    name = _model_name(parts[0].path, split_set is not None)
    return GGUFSource(spec, name, parts[0].path, parts, kvs, tensors)
