"""Where tensors come from: a .safetensors file, a model folder, or a Hugging Face repo id.

Opening a source reads JSON headers only (and the shard index); tensor bytes are read later, a chunk
of rows at a time, from a memory map. The safetensors format itself (header validation, tensor
bytes) lives in :mod:`qconv.source.safetensors`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from qconv.errors import FormatError, SourceError
from qconv.source.safetensors import (
    SUPPORTED_DTYPES,
    TensorRef,
    load_json,
    read_safetensors_header,
)

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


@dataclass(frozen=True, slots=True)
class Source:
    """An opened model: its tensors (file order: shards sorted, names sorted within a file)."""

    spec: str
    name: str
    root: Path | None
    tensors: tuple[TensorRef, ...]
    config: dict[str, Any] = field(default_factory=dict)
    files: tuple[Path, ...] = ()


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
