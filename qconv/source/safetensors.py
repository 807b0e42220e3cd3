"""The safetensors format: the header, validated as the safetensors library does, and tensor bytes.

A file is ``u64 N`` (little-endian) + N bytes of JSON header + the data section. Each tensor's
JSON entry gives ``dtype``, ``shape`` and ``data_offsets`` relative to byte ``8 + N``. The header is
parsed here rather than by the safetensors package because its NumPy backend cannot load BF16, the
dtype most checkpoints hold.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from qconv.errors import FormatError, SourceError

__all__ = [
    "MAX_HEADER_BYTES",
    "SAFETENSORS_ITEMSIZE",
    "SUPPORTED_DTYPES",
    "TensorRef",
    "load_json",
    "read_safetensors_header",
]

# Source dtypes qconv converts, with the NumPy dtype of their raw little-endian bytes.
SUPPORTED_DTYPES: dict[str, str] = {"F32": "<f4", "F16": "<f2", "BF16": "<u2"}
# Every dtype the safetensors format defines, with its element size, for header validation.
SAFETENSORS_ITEMSIZE: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit


def _n_rows(shape: tuple[int, ...]) -> int:
    n = 1
    for dim in shape[:-1]:
        n *= dim
    return n


@dataclass(frozen=True, slots=True)
class TensorRef:
    """One tensor inside a safetensors file; ``offset`` is absolute within the file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    path: Path
    offset: int
    nbytes: int

    @property
    def n_rows(self) -> int:
        return _n_rows(self.shape)

    @property
    def n_cols(self) -> int:
        return self.shape[-1] if self.shape else 1

    def read_rows(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        """Rows ``start:stop`` of the tensor viewed as (n_rows, n_cols), widened to float32.

        Only those rows are mapped; BF16 widens exactly by shifting into the high half of a float32.

        Raises:
            FormatError: the file shrank since its header was read (changed during conversion).
        """
        row_bytes = self.n_cols * np.dtype(SUPPORTED_DTYPES[self.dtype]).itemsize
        return self._read(start * row_bytes, (stop - start, self.n_cols))

    def read_row_part(self, row: int, col_start: int, col_stop: int) -> npt.NDArray[np.float32]:
        """Columns ``col_start:col_stop`` of one row, as a (1, n) float32 array."""
        itemsize = np.dtype(SUPPORTED_DTYPES[self.dtype]).itemsize
        return self._read((row * self.n_cols + col_start) * itemsize, (1, col_stop - col_start))

    def _read(self, skip: int, shape: tuple[int, int]) -> npt.NDArray[np.float32]:
        raw_dtype = np.dtype(SUPPORTED_DTYPES[self.dtype])
        start = self.offset + skip
        end = start + shape[0] * shape[1] * raw_dtype.itemsize
        # Mapping bytes past the end of a file that was truncated meanwhile is a ValueError at
        # best and SIGBUS on first touch at worst: check the size before every mapping.
        try:
            size = os.stat(self.path).st_size
        except OSError as e:
            raise SourceError(f"{self.path}: cannot read ({e.strerror or e})") from e
        if size < end:
            raise FormatError(
                f"{self.path}: the file shrank to {size} bytes while it was being converted "
                f"(tensor {self.name!r} needs bytes up to {end}); was it being replaced?"
            )
        try:
            raw = np.memmap(self.path, dtype=raw_dtype, mode="r", offset=start, shape=shape)
        except (OSError, ValueError) as e:
            raise FormatError(f"{self.path}: cannot map tensor {self.name!r} ({e})") from e
        # Widen straight into the result: NumPy casts the input in small buffers, so no second
        # full-size temporary exists beside it (a chunk's peak is the mapped bytes + the result).
        out = np.empty(shape, np.float32)
        if self.dtype == "BF16":
            np.left_shift(raw, 16, out=out.view(np.uint32), dtype=np.uint32)
        else:
            out[...] = raw
        return out


def read_safetensors_header(path: Path) -> list[TensorRef]:
    """Parse one safetensors header into TensorRefs, sorted by name (as llama.cpp's converter does).

    Validation follows the safetensors library (``Metadata::validate``): integer dims and offsets
    only, known dtypes, ``__metadata__`` a map of strings, and tensors that cover the data section
    exactly — contiguous, without overlaps or gaps, and nothing after the last one. Duplicate keys
    are refused too, rather than letting the last one silently win.

    Raises:
        SourceError: the file cannot be opened.
        FormatError: the header is too large, truncated, not JSON, or fails the checks above.
    """
    try:
        with path.open("rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            prefix = f.read(8)
            if len(prefix) < 8:
                raise FormatError(f"{path}: too short to be a safetensors file ({file_size} bytes)")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > MAX_HEADER_BYTES:
                raise FormatError(
                    f"{path}: header length {header_len} is over the 100 MiB the safetensors "
                    "format allows; the file is corrupt or not safetensors"
                )
            if header_len > file_size - 8:
                raise FormatError(
                    f"{path}: header length {header_len} exceeds the file ({file_size} bytes); "
                    "the file is truncated or not safetensors"
                )
            raw = f.read(header_len)
    except OSError as e:
        raise SourceError(f"{path}: cannot read ({e.strerror or e})") from e
    header = load_json(raw, path, "safetensors header", strict=True)
    if not isinstance(header, dict):
        raise FormatError(f"{path}: safetensors header is not a JSON object")
    _check_metadata(path, header.get("__metadata__"))
    data_start = 8 + header_len
    refs = [
        _tensor_ref(path, name, entry, data_start, file_size)
        for name, entry in header.items()
        if name != "__metadata__"
    ]
    _check_coverage(path, refs, data_start, file_size)
    return sorted(refs, key=lambda ref: ref.name)


class _DuplicateKey(ValueError):
    pass


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise _DuplicateKey(f"duplicate key {duplicate!r}")
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(raw: bytes | str, path: Path, what: str, *, strict: bool = False) -> Any:
    """Decode JSON from a checkpoint file, turning every way it can be malformed into FormatError.

    Besides syntax errors this covers invalid UTF-8 and nesting deep enough to exhaust the parser's
    recursion (100,000 levels). ``strict`` also refuses what the safetensors
    library's parser (serde_json) refuses: repeated keys and NaN/Infinity. Other files stay lenient
    there, as Python's json module wrote them (transformers saves configs with allow_nan).

    Raises:
        FormatError: naming ``path`` and ``what``.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return json.loads(
            text,
            object_pairs_hook=_unique_object if strict else None,
            parse_constant=_no_constant if strict else None,
        )
    except RecursionError:
        raise FormatError(f"{path}: {what} is nested too deeply to be valid") from None
    except _DuplicateKey as e:
        raise FormatError(f"{path}: {what} has a {e}") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise FormatError(f"{path}: {what} is not valid JSON ({e})") from None


def _check_metadata(path: Path, metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise FormatError(
            f"{path}: __metadata__ must map names to strings, as safetensors requires"
        )


def _exact_int(value: Any) -> bool:
    return type(value) is int and value >= 0  # bool is an int subclass, and not a size


def _tensor_ref(path: Path, name: str, entry: Any, data_start: int, file_size: int) -> TensorRef:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError(f"{path}: tensor name {name!r} is not valid UTF-8") from None
    if not isinstance(entry, dict):
        raise FormatError(f"{path}: tensor {name!r} has a malformed header entry (not an object)")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str):
        raise FormatError(f"{path}: tensor {name!r} has a malformed header entry (dtype {dtype!r})")
    if dtype not in SAFETENSORS_ITEMSIZE:
        raise FormatError(f"{path}: tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_exact_int(d) for d in shape):
        raise FormatError(
            f"{path}: tensor {name!r} has a malformed shape {shape!r} (non-negative integers)"
        )
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_exact_int, offsets))):
        raise FormatError(
            f"{path}: tensor {name!r} has malformed data_offsets {offsets!r} (two non-negative "
            "integers)"
        )
    begin, end = offsets
    count = 1
    for dim in shape:
        count *= dim
    if end - begin != count * SAFETENSORS_ITEMSIZE[dtype]:
        raise FormatError(
            f"{path}: tensor {name!r} spans bytes {begin}..{end}, but {dtype}{list(shape)} "
            f"needs {count * SAFETENSORS_ITEMSIZE[dtype]}"
        )
    if data_start + end > file_size:
        raise FormatError(
            f"{path}: tensor {name!r} ends at byte {data_start + end}, past the end of the file "
            f"({file_size} bytes); the download is incomplete"
        )
    return TensorRef(name, dtype, tuple(shape), path, data_start + begin, end - begin)


def _check_coverage(path: Path, refs: list[TensorRef], data_start: int, file_size: int) -> None:
    """Tensors must tile the data section exactly, as the safetensors library requires."""
    position = data_start
    for ref in sorted(refs, key=lambda ref: (ref.offset, ref.nbytes)):
        if ref.offset != position:
            how = "overlaps the tensor before it" if ref.offset < position else "leaves a gap"
            raise FormatError(
                f"{path}: tensor {ref.name!r} at data offset {ref.offset - data_start} {how}; "
                "tensors must cover the data section back to back"
            )
        position += ref.nbytes
    if position != file_size:
        raise FormatError(
            f"{path}: {file_size - position} bytes after the last tensor; safetensors files end "
            "with the last tensor's data"
        )
