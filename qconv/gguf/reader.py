"""Read a GGUF file's header: metadata, tensor infos and where each tensor's bytes live.

Only the header is parsed and the data section is never touched, so reading a multi-GB model is
instant. The file is memory-mapped and parsed with a bounds-checked cursor: every count and length
is checked against the bytes that remain before anything is allocated, so a hostile or truncated
file fails fast with a :class:`~qconv.errors.FormatError` naming the file and the place, never
with an IndexError, a MemoryError or a huge allocation. Validation follows ggml's ``gguf.cpp``
(``gguf_init_from_reader``): versions 2 and 3, at most 4 dims, names of at most 63 bytes, no
duplicate keys or tensor names, rows that split into whole blocks, power-of-two alignment, no
nested arrays. Unlike gguf.cpp the reader does not insist that tensors are packed back to back; it
only requires each tensor to be aligned and inside the file, which is all ``qconv info`` needs.

Strings are decoded as UTF-8 with invalid bytes replaced (U+FFFD): GGUF says strings are UTF-8,
but a vocabulary with a stray byte should still be inspectable rather than rejected.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from qconv.errors import FormatError, SourceError
from qconv.gguf.constants import (
    DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    GGUF_READABLE_VERSIONS,
    MAX_DIMS,
    MAX_TENSOR_NAME_BYTES,
    QUANT_SIZES,
    VALUE_NUMPY_DTYPE,
    VALUE_STRUCT,
    GGMLType,
    GGUFValueType,
    Keys,
    TensorInfo,
    padded,
)
from qconv.gguf.metadata import KV

__all__ = ["GGUFFile", "TensorInfo", "read_gguf", "tensor_data"]

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_HEADER = struct.Struct("<4sIQQ")  # magic, version, n_tensors, n_kv
_INT64_MAX = 2**63 - 1
# Smallest possible records, used to bound the counts before looping over them:
# a KV is key length (8) + a 1-byte key + value type (4) + a 1-byte value;
# a tensor info is name length (8) + n_dims (4) + type (4) + offset (8).
_MIN_KV_BYTES = 14
_MIN_TENSOR_INFO_BYTES = 24

_Buffer = bytes | mmap.mmap


@dataclass(frozen=True, slots=True)
class GGUFFile:
    """A parsed GGUF header. ``data_offset + tensor.offset`` is a tensor's absolute position."""

    path: Path
    version: int
    alignment: int
    kvs: list[KV]
    tensors: list[TensorInfo]
    data_offset: int
    file_size: int

    def get(self, key: str) -> KV | None:
        """The metadata record named ``key``, or None."""
        return next((kv for kv in self.kvs if kv.key == key), None)


class _Cursor:
    """A read position in the mapped header; every read is checked against the end of the file."""

    __slots__ = ("buf", "end", "label", "pos")

    def __init__(self, buf: _Buffer, label: str) -> None:
        self.buf = buf
        self.end = len(buf)
        self.label = label
        self.pos = 0

    def error(self, message: str) -> FormatError:
        return FormatError(f"{self.label}: {message}")

    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.end - self.pos:
            raise self.error(
                f"{what} at byte {self.pos} needs {n} bytes but only {self.remaining()} remain; "
                "the file is truncated"
            )
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return data

    def unpack(self, fmt: struct.Struct, what: str) -> Any:
        if fmt.size > self.end - self.pos:
            raise self.error(f"{what} at byte {self.pos} is cut off; the file is truncated")
        (value,) = fmt.unpack_from(self.buf, self.pos)
        self.pos += fmt.size
        return value

    def string(self, what: str) -> str:
        start = self.pos
        length = self.unpack(_U64, f"length of {what}")
        if length > self.remaining():
            raise self.error(
                f"{what} at byte {start} claims {length} bytes but only {self.remaining()} remain; "
                "the file is truncated or corrupt"
            )
        return self.take(length, what).decode("utf-8", "replace")


def _read_scalar(vtype: GGUFValueType) -> Callable[[_Cursor, str], Any]:
    fmt = VALUE_STRUCT[vtype]
    return lambda cur, what: cur.unpack(fmt, what)


def _read_string_array(cur: _Cursor, count: int, what: str) -> list[str]:
    # A 150k-token vocabulary lands here: keep the per-string loop free of method calls.
    buf, pos, end = cur.buf, cur.pos, cur.end
    unpack_length = _U64.unpack_from
    items: list[str] = []
    append = items.append
    for index in range(count):
        if end - pos < 8:
            cur.pos = pos
            raise cur.error(f"{what}[{index}] at byte {pos} is cut off; the file is truncated")
        (length,) = unpack_length(buf, pos)
        pos += 8
        if length > end - pos:
            raise cur.error(
                f"{what}[{index}] at byte {pos - 8} claims {length} bytes but only "
                f"{end - pos} remain; the file is truncated or corrupt"
            )
        append(buf[pos : pos + length].decode("utf-8", "replace"))
        pos += length
    cur.pos = pos
    return items


def _read_array(cur: _Cursor, what: str) -> tuple[GGUFValueType, list[str] | npt.NDArray[Any]]:
    item_type = _value_type(cur, f"element type of {what}")
    start = cur.pos
    count = cur.unpack(_U64, f"element count of {what}")
    if item_type == GGUFValueType.ARRAY:
        raise cur.error(f"{what} is a nested array, which GGUF readers (ggml) reject")
    if item_type == GGUFValueType.STRING:
        if count > cur.remaining() // 8:
            raise cur.error(
                f"{what} at byte {start} claims {count} strings but only {cur.remaining()} bytes "
                "remain; the file is truncated or corrupt"
            )
        return item_type, _read_string_array(cur, count, what)
    dtype = np.dtype(VALUE_NUMPY_DTYPE[item_type])
    if count > cur.remaining() // dtype.itemsize:
        raise cur.error(
            f"{what} at byte {start} claims {count} {item_type.name} items but only "
            f"{cur.remaining()} bytes remain; the file is truncated or corrupt"
        )
    items = np.frombuffer(cur.buf, dtype=dtype, count=count, offset=cur.pos)
    cur.pos += count * dtype.itemsize
    if item_type == GGUFValueType.BOOL:
        items = items != 0  # like ggml, any non-zero byte is true (a copy: one byte per item)
        items.flags.writeable = False
    return item_type, items


# Table of value readers keyed by type id (tinygrad's `readers` dict): no if/elif ladder.
_VALUE_READERS: dict[GGUFValueType, Callable[[_Cursor, str], Any]] = {
    vtype: _read_scalar(vtype) for vtype in VALUE_STRUCT
}
_VALUE_READERS[GGUFValueType.STRING] = _Cursor.string


def _value_type(cur: _Cursor, what: str) -> GGUFValueType:
    start = cur.pos
    type_id = cur.unpack(_U32, what)
    try:
        return GGUFValueType(type_id)
    except ValueError:
        raise cur.error(f"{what} at byte {start} is {type_id}, not a GGUF value type") from None


def _read_kv(cur: _Cursor, index: int, seen: set[str]) -> KV:
    start = cur.pos
    key = cur.string(f"key of metadata entry {index}")
    if not key:
        raise cur.error(f"metadata entry {index} at byte {start} has an empty key")
    if key in seen:
        raise cur.error(f"duplicate metadata key '{key}' (entry {index} at byte {start})")
    seen.add(key)
    vtype = _value_type(cur, f"value type of '{key}'")
    if vtype == GGUFValueType.ARRAY:
        item_type, items = _read_array(cur, f"'{key}'")
        return KV(key, vtype, items, item_type)
    return KV(key, vtype, _VALUE_READERS[vtype](cur, f"value of '{key}'"))


def _check_header(cur: _Cursor) -> tuple[int, int, int]:
    if cur.remaining() < _HEADER.size:
        if cur.buf[:4] != GGUF_MAGIC[: cur.remaining()]:
            raise cur.error("not a GGUF file (it does not start with 'GGUF')")
        raise cur.error(f"only {cur.remaining()} bytes, too short for a GGUF header; truncated")
    magic, version, n_tensors, n_kv = _HEADER.unpack_from(cur.buf, 0)
    cur.pos = _HEADER.size
    if magic != GGUF_MAGIC:
        raise cur.error(f"not a GGUF file (starts with {magic!r}, expected b'GGUF')")
    if version & 0xFFFF == 0:
        raise cur.error(
            f"version field is {version:#010x}: the file is big-endian or corrupt "
            "(qconv reads little-endian GGUF only)"
        )
    if version not in GGUF_READABLE_VERSIONS:
        readable = " and ".join(str(v) for v in GGUF_READABLE_VERSIONS)
        raise cur.error(
            f"GGUF version {version} is not supported (qconv reads versions {readable})"
        )
    if n_kv > cur.remaining() // _MIN_KV_BYTES:
        raise cur.error(f"header claims {n_kv} metadata entries but the file is far too short")
    if n_tensors > cur.remaining() // _MIN_TENSOR_INFO_BYTES:
        raise cur.error(f"header claims {n_tensors} tensors but the file is far too short")
    return int(version), int(n_tensors), int(n_kv)


def _alignment(cur: _Cursor, kvs: list[KV]) -> int:
    kv = next((kv for kv in kvs if kv.key == Keys.ALIGNMENT), None)
    if kv is None:
        return DEFAULT_ALIGNMENT
    if kv.vtype != GGUFValueType.UINT32:
        raise cur.error(f"{Keys.ALIGNMENT} must be a UINT32 but is a {kv.vtype.name}")
    alignment = int(kv.value)
    if alignment <= 0 or alignment & (alignment - 1):
        raise cur.error(f"{Keys.ALIGNMENT} is {alignment}, which is not a power of 2")
    return alignment


def _read_shape(cur: _Cursor, name: str) -> tuple[int, ...]:
    start = cur.pos
    n_dims = cur.unpack(_U32, f"n_dims of tensor '{name}'")
    # ggml tolerates n_dims == 0 (a scalar, ne = [1, 1, 1, 1]); so do we, as shape ().
    if n_dims > MAX_DIMS:
        raise cur.error(f"tensor '{name}' at byte {start} has {n_dims} dims (at most {MAX_DIMS})")
    ne = [cur.unpack(_U64, f"dim {j} of tensor '{name}'") for j in range(n_dims)]
    # Python ints, so the product cannot wrap like np.prod on uint64 would; ggml uses int64.
    n_elements = 1
    for dim in ne:
        n_elements *= dim
    if any(dim > _INT64_MAX for dim in ne) or n_elements > _INT64_MAX:
        raise cur.error(f"tensor '{name}' has dims {ne} whose element count overflows int64")
    # GGUF stores dims fastest-varying first (ne[0] = row length); NumPy order is the reverse.
    return tuple(reversed(ne))


def _read_tensor_info(cur: _Cursor, index: int, seen: set[str]) -> TensorInfo:
    start = cur.pos
    length = cur.unpack(_U64, f"name length of tensor {index}")
    if length > MAX_TENSOR_NAME_BYTES:
        raise cur.error(
            f"tensor {index} at byte {start} has a {length}-byte name "
            f"(at most {MAX_TENSOR_NAME_BYTES})"
        )
    name = cur.take(length, f"name of tensor {index}").decode("utf-8", "replace")
    if name in seen:
        raise cur.error(f"duplicate tensor name '{name}' (tensor {index} at byte {start})")
    seen.add(name)
    shape = _read_shape(cur, name)
    type_id = cur.unpack(_U32, f"type of tensor '{name}'")
    try:
        qtype = GGMLType(type_id)
    except ValueError:
        raise cur.error(f"tensor '{name}' has unknown ggml type id {type_id}") from None
    block_size, type_size = QUANT_SIZES[qtype]
    n_cols = shape[-1] if shape else 1
    if n_cols % block_size:
        raise cur.error(
            f"tensor '{name}' rows have {n_cols} elements, not a multiple of "
            f"{qtype.name}'s block size {block_size}"
        )
    n_elements = 1
    for dim in shape:
        n_elements *= dim
    offset = cur.unpack(_U64, f"offset of tensor '{name}'")
    return TensorInfo(name, shape, qtype, offset, n_elements // block_size * type_size)


def _check_placement(cur: _Cursor, tensor: TensorInfo, alignment: int, data_offset: int) -> None:
    if tensor.offset % alignment:
        raise cur.error(
            f"tensor '{tensor.name}' offset {tensor.offset} is not a multiple of the "
            f"alignment {alignment}"
        )
    end = data_offset + tensor.offset + tensor.nbytes
    if end > cur.end:
        raise cur.error(
            f"tensor '{tensor.name}' data ends at byte {end} past the end of the file "
            f"({cur.end} bytes); the file is truncated"
        )


def _parse(buf: _Buffer, path: Path) -> GGUFFile:
    cur = _Cursor(buf, str(path))
    version, n_tensors, n_kv = _check_header(cur)
    keys: set[str] = set()
    kvs = [_read_kv(cur, index, keys) for index in range(n_kv)]
    alignment = _alignment(cur, kvs)
    names: set[str] = set()
    tensors = [_read_tensor_info(cur, index, names) for index in range(n_tensors)]
    data_offset = padded(cur.pos, alignment)
    for tensor in tensors:
        _check_placement(cur, tensor, alignment, data_offset)
    return GGUFFile(path, version, alignment, kvs, tensors, data_offset, cur.end)


def _source_error(path: Path, error: OSError) -> SourceError:
    if isinstance(error, FileNotFoundError):
        return SourceError(f"{path}: no such file")
    if isinstance(error, IsADirectoryError):
        return SourceError(f"{path}: is a directory, not a GGUF file")
    if isinstance(error, PermissionError):
        return SourceError(f"{path}: permission denied")
    return SourceError(f"{path}: cannot read ({error.strerror or error})")


def read_gguf(path: str | os.PathLike[str]) -> GGUFFile:
    """Parse the header of the GGUF file at ``path`` (metadata, tensor infos, data offset).

    The data section is never read, so this takes milliseconds even for multi-GB files; arrays in
    the metadata come back as read-only NumPy arrays viewing the mapped file (string arrays as
    lists). Use :func:`tensor_data` to map a tensor's bytes.

    Raises:
        SourceError: the file is missing or cannot be read.
        FormatError: the file is not a valid little-endian GGUF v2/v3 file (truncated, corrupt,
            hostile); the message names the file and the offending record.

    Example:
        >>> gguf = read_gguf("model.gguf")
        >>> [(t.name, t.shape, t.qtype.name) for t in gguf.tensors][:1]
        [('token_embd.weight', (49152, 576), 'Q8_0')]
    """
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise SourceError(f"{path}: is a directory, not a GGUF file")
            if not stat.S_ISREG(info.st_mode):
                raise SourceError(f"{path}: not a regular file")
            if info.st_size == 0:
                return _parse(b"", path)
            # Not closed here: metadata arrays are views into the map, which lives as long as
            # they do (a 100 MB array costs no memory until its head is printed).
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            return _parse(mapped, path)
    except OSError as e:
        raise _source_error(path, e) from e


def tensor_data(gguf_file: GGUFFile, tensor: TensorInfo) -> npt.NDArray[np.uint8]:
    """Map ``tensor``'s bytes read-only as a uint8 array of shape (n_rows, row bytes).

    A row is one GGUF row (``shape[-1]`` elements), so quantization blocks never straddle rows.

    Raises:
        SourceError: the file cannot be opened any more.
    """
    block_size, type_size = QUANT_SIZES[tensor.qtype]
    n_cols = tensor.shape[-1] if tensor.shape else 1
    row_bytes = n_cols // block_size * type_size
    n_rows = 1
    for dim in tensor.shape[:-1]:
        n_rows *= dim
    if tensor.nbytes == 0:
        return np.zeros((n_rows, row_bytes), dtype=np.uint8)  # mmap cannot map zero bytes
    try:
        return np.memmap(
            gguf_file.path,
            dtype=np.uint8,
            mode="r",
            offset=gguf_file.data_offset + tensor.offset,
            shape=(n_rows, row_bytes),
        )
    except OSError as e:
        raise _source_error(gguf_file.path, e) from e
