"""Where tensors come from: a .safetensors file, a model folder, or a Hugging Face repo id.

Opening a source reads JSON headers only (and the shard index); tensor bytes are read later, a chunk
of rows at a time, from a memory map. The safetensors header is parsed here rather than by the
safetensors package because its NumPy backend cannot load BF16, the dtype most checkpoints hold.

Layout of a safetensors file: ``u64 LE header length N`` · ``N bytes of JSON`` · data, where each
tensor's JSON entry gives ``dtype``, ``shape`` and ``data_offsets`` relative to byte ``8 + N``.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from qconv.errors import FormatError, SourceError

__all__ = [
    "SUPPORTED_DTYPES",
    "Source",
    "TensorData",
    "TensorRef",
    "load_json",
    "open_source",
    "read_json",
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
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
HUB_PATTERNS = ["*.safetensors", "*.json", "tokenizer.model", "*.jinja", "*.txt", "README.md"]
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class TensorData(Protocol):
    """Anything that hands out float32 rows: a file tensor, a permuted view, a generated array."""

    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    def read_rows(self, start: int, stop: int) -> npt.NDArray[np.float32]: ...
    def read_row_part(self, row: int, col_start: int, col_stop: int) -> npt.NDArray[np.float32]:
        """Part of one row, as (1, col_stop - col_start): rows longer than a chunk stream too."""
        ...


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
        if self.dtype == "BF16":
            return (raw.astype(np.uint32) << 16).view(np.float32)
        return raw.astype(np.float32)


@dataclass(frozen=True, slots=True)
class Source:
    """An opened model: its tensors (file order: shards sorted, names sorted within a file)."""

    spec: str
    name: str
    root: Path | None
    tensors: tuple[TensorRef, ...]
    config: dict[str, Any] = field(default_factory=dict)
    files: tuple[Path, ...] = ()


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
    header = load_json(raw, path, "safetensors header", unique_keys=True)
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


def load_json(raw: bytes | str, path: Path, what: str, *, unique_keys: bool = False) -> Any:
    """Decode JSON from a checkpoint file, turning every way it can be malformed into FormatError.

    Besides syntax errors this covers invalid UTF-8, NaN/Infinity (not JSON), nesting deep enough
    to exhaust the parser's recursion (100,000 levels) and, with ``unique_keys``, repeated keys.

    Raises:
        FormatError: naming ``path`` and ``what``.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return json.loads(
            text,
            object_pairs_hook=_unique_object if unique_keys else None,
            parse_constant=_no_constant,
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


def open_source(spec: str, *, revision: str | None = None) -> Source:
    """Open ``spec``: a .safetensors file, a model folder, or a Hugging Face repo id.

        A local path wins over a repo id of the same spelling. Repo ids are fetched with
        ``huggingface_hub.snapshot_download`` (honouring HF_HOME, HF_HUB_OFFLINE and HF_TOKEN),
    restricted     to safetensors, JSON and tokenizer files.

        Raises:
            SourceError: nothing usable at ``spec`` (missing, pickle-only, hub unreachable).
            FormatError: a header or index file is corrupt.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return _open_file(spec, path)
    if path.is_dir():
        return _open_dir(spec, path, name=path.resolve().name)
    if REPO_ID.match(spec) and not spec.startswith((".", "/", "~")):
        snapshot = _download(spec, revision)
        return _open_dir(spec, snapshot, name=spec.split("/")[-1])
    raise SourceError(f"{spec}: no such file or folder, and not a Hugging Face repo id (org/name)")


def _open_file(spec: str, path: Path) -> Source:
    if path.suffix in PICKLE_SUFFIXES:
        raise SourceError(f"{path}: {_PICKLE_ADVICE}")
    if path.suffix != ".safetensors":
        raise SourceError(f"{path}: not a .safetensors file; give a .safetensors file or a folder")
    refs = read_safetensors_header(path)
    config = _read_config(path.parent)
    return Source(spec, path.stem, path.parent, tuple(refs), config, (path,))


_PICKLE_ADVICE = (
    "PyTorch pickle checkpoints are not supported (loading them runs arbitrary code); "
    "convert to safetensors first, e.g. with transformers' save_pretrained(safe_serialization=True)"
)


def _open_dir(spec: str, directory: Path, *, name: str) -> Source:
    index_path = directory / INDEX_FILE
    if index_path.is_file():
        files = _shards_from_index(index_path)
    elif (directory / SINGLE_FILE).is_file():
        files = [directory / SINGLE_FILE]
    else:
        others = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if others:
            raise SourceError(f"{directory}: only {', '.join(others)} found. {_PICKLE_ADVICE}")
        raise SourceError(
            f"{directory}: no {SINGLE_FILE} or {INDEX_FILE}; point qconv at a model folder "
            "or a .safetensors file"
        )
    refs: list[TensorRef] = []
    for file in files:
        refs.extend(read_safetensors_header(file))
    if index_path.is_file():
        _check_index_complete(index_path, refs)
    _check_unique(refs)
    return Source(spec, name, directory, tuple(refs), _read_config(directory), tuple(files))


def _shards_from_index(index_path: Path) -> list[Path]:
    document = read_json(index_path)
    weight_map = document.get("weight_map") if isinstance(document, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise FormatError(f"{index_path}: no 'weight_map' object mapping tensor names to shards")
    files = []
    for shard in sorted(set(map(str, weight_map.values()))):
        shard_path = index_path.parent / shard
        if "/" in shard or "\\" in shard or shard.startswith("."):
            raise FormatError(f"{index_path}: shard name {shard!r} points outside the folder")
        if not shard_path.is_file():
            raise SourceError(
                f"{shard_path}: listed in {index_path.name} but missing; download it again"
            )
        files.append(shard_path)
    return files


def _check_index_complete(index_path: Path, refs: list[TensorRef]) -> None:
    weight_map = read_json(index_path)["weight_map"]
    where = {ref.name: ref.path.name for ref in refs}
    for tensor, shard in weight_map.items():
        if where.get(tensor) != shard:
            found = f"found in {where[tensor]}" if tensor in where else "not in any shard"
            raise SourceError(
                f"{index_path}: tensor {tensor!r} is listed in {shard} but {found}; "
                "the index and the shards do not match"
            )


def _check_unique(refs: list[TensorRef]) -> None:
    seen: dict[str, Path] = {}
    for ref in refs:
        if ref.name in seen:
            raise FormatError(
                f"tensor {ref.name!r} appears in both {seen[ref.name]} and {ref.path}"
            )
        seen[ref.name] = ref.path


def read_json(path: Path) -> Any:
    """A JSON file of the checkpoint; SourceError if unreadable, FormatError if malformed."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SourceError(f"{path}: cannot read ({e.strerror or e})") from e
    return load_json(raw, path, "the file")


def _read_config(directory: Path) -> dict[str, Any]:
    config_path = directory / "config.json"
    if not config_path.is_file():
        return {}
    config = read_json(config_path)
    if not isinstance(config, dict):
        raise FormatError(f"{config_path}: expected a JSON object")
    return config


def _download(repo_id: str, revision: str | None) -> Path:
    # Imported here: huggingface_hub is slow to import and only this path needs it.
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_PATTERNS))
    except GatedRepoError as e:
        raise SourceError(
            f"{repo_id}: gated repository; accept its licence on the Hub and set HF_TOKEN"
        ) from e
    except RepositoryNotFoundError as e:
        raise SourceError(
            f"{repo_id}: repository not found (or private: set HF_TOKEN); check the spelling"
        ) from e
    except RevisionNotFoundError as e:
        raise SourceError(f"{repo_id}: revision {revision!r} not found") from e
    except LocalEntryNotFoundError as e:
        raise SourceError(
            f"{repo_id}: not in the local Hugging Face cache and the Hub cannot be reached "
            "(HF_HUB_OFFLINE is set or no network); download it once online or pass a local folder"
        ) from e
    except (HfHubHTTPError, OSError) as e:
        raise SourceError(f"{repo_id}: download failed ({e})") from e
