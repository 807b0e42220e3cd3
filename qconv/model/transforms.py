"""Streaming tensor transforms: views that answer "rows a..b of the output" from the sources.

llama.cpp's converter transforms whole tensors in memory (torch.stack of every expert, a fused
tensor split in two, norm weights + 1, a vocabulary trimmed). qconv does the same arithmetic as
views over :class:`~qconv.source.TensorData`: a view reads only the source rows its output rows
need, in the worker that quantizes them, so peak memory never grows with the number of experts or
the size of the model. Every view is a frozen record, picklable for the worker processes.

Rows are always the flattened leading dimensions: a (n_expert, n_ff, n_embd) stack has
n_expert × n_ff rows of n_embd columns, and expert e's rows are e·n_ff … (e+1)·n_ff.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from qconv.source import TensorData

__all__ = [
    "GeneratedTensor",
    "PermutedTensor",
    "RowSlice",
    "ShiftedTensor",
    "StackedTensor",
    "qk_row_order",
]


def _n_rows(shape: tuple[int, ...]) -> int:
    n = 1
    for dim in shape[:-1]:
        n *= dim
    return n


def qk_row_order(rows: int, n_head: int) -> npt.NDArray[np.intp]:
    """llama's Q/K permutation: per head, HF's half-split RoPE rows become interleaved pairs
    (convert_hf_to_gguf.py ``LlamaModel.permute``); ``rows = source[order]``."""
    order = np.arange(rows, dtype=np.intp).reshape(n_head, 2, rows // n_head // 2)
    return np.ascontiguousarray(order.swapaxes(1, 2)).reshape(rows)


@dataclass(frozen=True, slots=True)
class PermutedTensor:
    """A tensor whose rows are reordered (llama's Q/K RoPE layout)."""

    base: TensorData
    row_order: npt.NDArray[np.intp]
    name: str = ""

    @property
    def dtype(self) -> str:
        return self.base.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.base.shape

    def read_rows(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        wanted = self.row_order[start:stop]
        if len(wanted) == 0:
            return self.base.read_rows(0, 0)
        low, high = int(wanted.min()), int(wanted.max()) + 1
        span = self.base.read_rows(low, high)
        return np.ascontiguousarray(span[wanted - low])

    def read_row_part(self, row: int, col_start: int, col_stop: int) -> npt.NDArray[np.float32]:
        return self.base.read_row_part(int(self.row_order[row]), col_start, col_stop)


@dataclass(frozen=True, slots=True)
class GeneratedTensor:
    """A tensor computed by qconv (e.g. rope_freqs), held in memory; it is small."""

    name: str
    values: npt.NDArray[np.float32]
    dtype: str = "F32"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape)

    def read_rows(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        return np.asarray(self.values, dtype=np.float32).reshape(-1, self.shape[-1])[start:stop]

    def read_row_part(self, row: int, col_start: int, col_stop: int) -> npt.NDArray[np.float32]:
        return self.read_rows(row, row + 1)[:, col_start:col_stop]


@dataclass(frozen=True, slots=True)
class StackedTensor:
    """Equal-shaped tensors stacked on a new leading axis (``torch.stack(parts, dim=0)``)."""

    name: str
    parts: tuple[TensorData, ...]

    @property
    def dtype(self) -> str:
        return self.parts[0].dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.parts), *self.parts[0].shape)

    @property
    def n_sources(self) -> int:
        return len(self.parts)

    def read_rows(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        per_part = _n_rows(self.parts[0].shape)
        pieces = []
        row = start
        while row < stop:
            index, offset = divmod(row, per_part)
            take = min(stop - row, per_part - offset)
            pieces.append(self.parts[index].read_rows(offset, offset + take))
            row += take
        if not pieces:
            return self.parts[0].read_rows(0, 0)
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def read_row_part(self, row: int, col_start: int, col_stop: int) -> npt.NDArray[np.float32]:
        index, offset = divmod(row, _n_rows(self.parts[0].shape))
        return self.parts[index].read_row_part(offset, col_start, col_stop)


@dataclass(frozen=True, slots=True)
class RowSlice:
    """Rows ``first … first + count`` of every leading block of ``base``.

    Splits a fused tensor along its second-to-last axis (``gate_up_proj[..., :n_ff, :]``) or keeps
    the first rows of a matrix (an embedding trimmed to the tokenizer's vocabulary). ``base`` is
    viewed as (blocks, block_rows, cols); the slice takes rows first…first+count of each block.
    """

    name: str
    base: TensorData
    first: int
    count: int

    @property
    def dtype(self) -> str:
        return self.base.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.base.shape[:-2], self.count, self.base.shape[-1])

    def read_rows(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        block_rows = self.base.shape[-2]
        pieces = []
        row = start
        while row < stop:
            block, offset = divmod(row, self.count)
            take = min(stop - row, self.count - offset)
            first = block * block_rows + self.first + offset
            pieces.append(self.base.read_rows(first, first + take))
            row += take
        if not pieces:
            return self.base.read_rows(0, 0)
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def read_row_part(self, row: int, col_start: int, col_stop: int) -> npt.NDArray[np.float32]:
        block, offset = divmod(row, self.count)
        first = block * self.base.shape[-2] + self.first + offset
        return self.base.read_row_part(first, col_start, col_stop)


@dataclass(frozen=True, slots=True)
class ShiftedTensor:
    """``base + offset`` in float32 (Gemma's norm weights are stored as w − 1)."""

    name: str
    base: TensorData
    offset: float = 1.0

    @property
    def dtype(self) -> str:
        return self.base.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.base.shape

    def read_rows(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        rows = self.base.read_rows(start, stop)
        return rows + np.float32(self.offset)

    def read_row_part(self, row: int, col_start: int, col_stop: int) -> npt.NDArray[np.float32]:
        return self.base.read_row_part(row, col_start, col_stop) + np.float32(self.offset)
