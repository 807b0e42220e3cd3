"""GGUF v3 writer: header, metadata and tensor index first, then the data streamed tensor by tensor.

Every tensor's size is known from its plan, so all offsets are fixed before the first data byte is
written; that is what lets qconv stream to a pipe (``-o -``) and never hold a tensor whole.

File layout (little-endian)::

    "GGUF" | u32 version=3 | u64 n_tensors | u64 n_kv
    n_kv × (string key | u32 value type | value)
    n_tensors × (string name | u32 n_dims | n_dims × u64 ne | u32 ggml type | u64 offset)
    zero padding to the alignment
    tensor data, each tensor followed by zero padding to the alignment

A string is ``u64 length`` + UTF-8 bytes. ``ne`` is GGUF's dimension order: the NumPy shape
reversed, so ne[0] is the row length; this module and reader.py are the only places that reverse it.
"""

from __future__ import annotations

import contextlib
import enum
import os
import struct
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from qconv.errors import OutputError, UsageError
from qconv.gguf.constants import (
    DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    GGUF_VERSION,
    MAX_DIMS,
    MAX_TENSOR_NAME_BYTES,
    VALUE_STRUCT,
    GGMLType,
    GGUFValueType,
    Keys,
    TensorInfo,
    padded,
    tensor_nbytes,
)
from qconv.gguf.metadata import KV, validate_kv

__all__ = ["GGUFWriter", "TensorInfo", "alignment_of", "atomic_output", "encode_header", "layout"]


def alignment_of(kvs: Sequence[KV]) -> int:
    """The data alignment a file with these KVs uses: general.alignment, else 32.

    Raises:
        UsageError: general.alignment is not a UINT32 power of two.
    """
    for kv in kvs:
        if kv.key == Keys.ALIGNMENT:
            value = kv.value
            if kv.vtype != GGUFValueType.UINT32 or value <= 0 or value & (value - 1):
                raise UsageError(f"{Keys.ALIGNMENT} must be a u32 power of two, not {value!r}")
            return int(value)
    return DEFAULT_ALIGNMENT


def layout(
    entries: Sequence[tuple[str, tuple[int, ...], GGMLType]], alignment: int
) -> list[TensorInfo]:
    """Give each (name, shape, type) its data offset: back to back, each padded to ``alignment``."""
    infos, offset = [], 0
    for name, shape, qtype in entries:
        nbytes = tensor_nbytes(qtype, shape)
        infos.append(TensorInfo(name, shape, qtype, offset, nbytes))
        offset += padded(nbytes, alignment)
    return infos


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _scalar(vtype: GGUFValueType, value: Any) -> bytes:
    if vtype == GGUFValueType.STRING:
        return _string(value)
    return VALUE_STRUCT[vtype].pack(value)


def _kv_bytes(kv: KV) -> bytes:
    validate_kv(kv)
    head = _string(kv.key) + struct.pack("<I", kv.vtype)
    if kv.vtype != GGUFValueType.ARRAY:
        return head + _scalar(kv.vtype, kv.value)
    assert kv.item_type is not None
    head += struct.pack("<IQ", kv.item_type, len(kv.value))
    if kv.item_type == GGUFValueType.STRING:
        return head + b"".join(_string(item) for item in kv.value)
    # Fixed-width arrays (token scores, types) can be long: pack them in one call.
    fmt = VALUE_STRUCT[kv.item_type].format[1:]
    return head + struct.pack(f"<{len(kv.value)}{fmt}", *kv.value)


def _tensor_info_bytes(info: TensorInfo) -> bytes:
    name = info.name.encode("utf-8")
    if len(name) > MAX_TENSOR_NAME_BYTES:
        raise UsageError(
            f"tensor name {info.name!r} is {len(name)} bytes; GGUF allows at most "
            f"{MAX_TENSOR_NAME_BYTES} (use --arch to map names, or rename the tensor)"
        )
    if not 1 <= len(info.shape) <= MAX_DIMS:
        raise UsageError(f"tensor {info.name!r} has {len(info.shape)} dims; GGUF allows 1..4")
    ne = tuple(reversed(info.shape))  # GGUF dimension order: row length first
    return (
        struct.pack("<Q", len(name))
        + name
        + struct.pack(f"<I{len(ne)}Q", len(ne), *ne)
        + struct.pack("<IQ", info.qtype, info.offset)
    )


def encode_header(kvs: Sequence[KV], tensors: Sequence[TensorInfo], alignment: int) -> bytes:
    """Everything before the data section, padded to ``alignment``."""
    keys = [kv.key for kv in kvs]
    if len(set(keys)) != len(keys):
        raise UsageError(
            f"duplicate metadata keys: {sorted({k for k in keys if keys.count(k) > 1})}"
        )
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise UsageError(f"duplicate tensor names: {duplicated}")
    parts = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(tensors), len(kvs))]
    parts += [_kv_bytes(kv) for kv in kvs]
    parts += [_tensor_info_bytes(t) for t in tensors]
    header = b"".join(parts)
    return header + bytes(padded(len(header), alignment) - len(header))


class WriterState(enum.Enum):
    EMPTY = "empty"
    DATA = "data"
    CLOSED = "closed"


class GGUFWriter:
    """Writes one GGUF file to a binary stream: begin → (write…, end_tensor)* → close."""

    def __init__(self, stream: IO[bytes], *, label: str = "output") -> None:
        self._stream = stream
        self._label = label
        self._state = WriterState.EMPTY
        self._tensors: list[TensorInfo] = []
        self._alignment = DEFAULT_ALIGNMENT
        self._index = 0
        self._written = 0
        self.bytes_written = 0

    def _expect(self, state: WriterState, action: str) -> None:
        if self._state != state:
            raise RuntimeError(f"cannot {action}: expected writer state {state}, got {self._state}")

    def _emit(self, data: bytes | memoryview) -> None:
        try:
            self._stream.write(data)
        except OSError as e:
            raise OutputError(f"{self._label}: write failed ({e.strerror or e})") from e
        self.bytes_written += len(data)

    def begin(self, kvs: Sequence[KV], tensors: Sequence[TensorInfo]) -> None:
        """Write magic, version, counts, metadata and the tensor index."""
        self._expect(WriterState.EMPTY, "begin")
        self._alignment = alignment_of(kvs)
        self._tensors = list(tensors)
        self._emit(encode_header(kvs, self._tensors, self._alignment))
        self._state = WriterState.DATA

    def write(self, data: npt.NDArray[Any] | bytes) -> None:
        """Append bytes of the current tensor (whole rows at a time, in order)."""
        self._expect(WriterState.DATA, "write tensor data")
        if self._index >= len(self._tensors):
            raise RuntimeError("all tensors are already written")
        raw = data if isinstance(data, bytes) else np.ascontiguousarray(data).view(np.uint8)
        view = memoryview(raw).cast("B")  # type: ignore[arg-type]  # ndarray is a buffer
        self._written += len(view)
        if self._written > self._tensors[self._index].nbytes:
            raise RuntimeError(f"tensor {self._tensors[self._index].name}: more bytes than planned")
        self._emit(view)

    def end_tensor(self) -> None:
        """Check the tensor is complete and pad it to the alignment."""
        self._expect(WriterState.DATA, "end a tensor")
        info = self._tensors[self._index]
        if self._written != info.nbytes:
            raise RuntimeError(f"tensor {info.name}: wrote {self._written} of {info.nbytes} bytes")
        self._emit(bytes(padded(info.nbytes, self._alignment) - info.nbytes))
        self._index += 1
        self._written = 0

    def close(self) -> None:
        """Check every tensor was written and flush."""
        self._expect(WriterState.DATA, "close")
        if self._index != len(self._tensors):
            raise RuntimeError(f"closed after {self._index} of {len(self._tensors)} tensors")
        try:
            self._stream.flush()
        except OSError as e:
            raise OutputError(f"{self._label}: write failed ({e.strerror or e})") from e
        self._state = WriterState.CLOSED


@contextlib.contextmanager
def atomic_output(path: Path, *, force: bool) -> Iterator[IO[bytes]]:
    """Open a temporary file beside ``path``; rename it to ``path`` only if the block succeeds.

    Any exception, Ctrl-C included, removes the temporary file, so a partial file never appears at
    ``path``.

    Raises:
        OutputError: ``path`` exists and ``force`` is false, or the folder is not writable.
    """
    if path.exists() and not force:
        raise OutputError(f"{path}: already exists; pass --force to overwrite it")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name for the output")
    try:
        fd, temp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".partial", dir=path.parent or Path(".")
        )
    except OSError as e:
        raise OutputError(f"{path}: cannot create the output ({e.strerror or e})") from e
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb", buffering=1024 * 1024) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
