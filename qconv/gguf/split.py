"""Split GGUF sets: parts named ``NAME-00001-of-0000N.gguf`` that llama.cpp loads from the first.

Writing follows gguf-py's ``GGUFWriter`` as ``convert_hf_to_gguf.py --split-max-size/--split-max-
tensors`` drives it (``add_tensor_info``, ``add_shard_kv_data``, ``format_shard_names``): tensors
are taken in file order and a new part starts, once the current part holds a tensor, when it
already has ``max_tensors`` tensors or the next tensor's bytes would take it past ``max_size``
(unpadded bytes). Every part is a full GGUF file; the first carries all metadata, and every part
ends its metadata with ``split.no`` (u16, 0-based), ``split.count`` (u16) and
``split.tensors.count`` (i32). A model that fits in one part is written unsplit under the plain
name, as the converter does. All parts are written atomically together (:func:`atomic_outputs`;
a single file goes through :func:`qconv.gguf.writer.atomic_output`).

Reading follows ``llama_model_loader`` (``src/llama-model-loader.cpp``): the part names come from
the first part's name and ``split.count`` (``llama_split_prefix``/``llama_split_path``), every part
must carry its own index in ``split.no``, tensor names must be unique across parts, and the set must
hold ``split.tensors.count`` tensors. Parts of another set with the same counts and disjoint names
cannot be told apart (the format has no set identifier), as llama.cpp cannot either.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from qconv.errors import FormatError, OutputError, UsageError
from qconv.gguf.constants import GGUFValueType
from qconv.gguf.metadata import KV
from qconv.gguf.reader import GGUFFile, read_gguf

__all__ = [
    "SPLIT_COUNT",
    "SPLIT_KEYS",
    "SPLIT_NO",
    "SPLIT_TENSORS_COUNT",
    "SplitSet",
    "assign_parts",
    "atomic_outputs",
    "parse_split_size",
    "part_kvs",
    "part_path",
    "read_split_set",
    "split_kvs",
    "split_position",
]

SPLIT_NO = "split.no"
SPLIT_COUNT = "split.count"
SPLIT_TENSORS_COUNT = "split.tensors.count"
SPLIT_KEYS = (SPLIT_NO, SPLIT_COUNT, SPLIT_TENSORS_COUNT)
_PART_NAME = re.compile(r"^(?P<prefix>.+)-(?P<no>[0-9]{5})-of-(?P<count>[0-9]{5})\.gguf$")
_UNITS = {"K": 1000, "M": 1000**2, "G": 1000**3}  # decimal, as convert_hf_to_gguf.py


def parse_split_size(text: str) -> int:
    """``--split-max-size``: bytes, or a number followed by K, M or G (powers of 1000).

    The same grammar as convert_hf_to_gguf.py's ``split_str_to_n_bytes``, so a size means the
    same number of bytes to both tools.

    Raises:
        UsageError: anything else, or zero.
    """
    spec = text.strip()
    scale = _UNITS.get(spec[-1:].upper(), 1) if spec else 1
    digits = spec[:-1] if scale != 1 else spec
    if not digits.isdigit() or int(digits) == 0:
        raise UsageError(
            f"--split-max-size {text!r}: give a positive number of bytes, optionally followed "
            "by K, M or G (e.g. 50G, 500M)"
        )
    return int(digits) * scale


def assign_parts(nbytes: Sequence[int], *, max_tensors: int = 0, max_size: int = 0) -> list[int]:
    """The part index of each tensor, in file order (gguf-py ``add_tensor_info``'s rule).

    0 disables a limit. A tensor larger than ``max_size`` gets a part of its own.
    """
    parts: list[int] = []
    count, size, part = 0, 0, 0
    for n in nbytes:
        if count > 0 and (
            (max_tensors and count >= max_tensors) or (max_size and size + n > max_size)
        ):
            part, count, size = part + 1, 0, 0
        parts.append(part)
        count += 1
        size += n
    return parts


def part_path(path: Path, index: int, count: int) -> Path:
    """``<stem>-<index+1:05>-of-<count:05>.gguf`` beside ``path`` (gguf-py format_shard_names)."""
    return path.with_name(f"{path.stem}-{index + 1:05d}-of-{count:05d}.gguf")


def part_kvs(index: int, count: int, n_tensors: int) -> list[KV]:
    """The three split keys every part ends its metadata with."""
    return [
        KV(SPLIT_NO, GGUFValueType.UINT16, index),
        KV(SPLIT_COUNT, GGUFValueType.UINT16, count),
        KV(SPLIT_TENSORS_COUNT, GGUFValueType.INT32, n_tensors),
    ]


def split_kvs(kvs: Sequence[KV], n_parts: int, n_tensors: int) -> list[list[KV]]:
    """Each part's metadata: all of ``kvs`` in the first, then the split keys in every part.

    One part means no split: ``kvs`` alone, as the converter writes an unsplit model.
    """
    if n_parts == 1:
        return [list(kvs)]
    first = [*kvs, *part_kvs(0, n_parts, n_tensors)]
    return [first] + [part_kvs(i, n_parts, n_tensors) for i in range(1, n_parts)]


def _int_value(gguf: GGUFFile, key: str) -> int | None:
    kv = gguf.get(key)
    if kv is None:
        return None
    if kv.vtype == GGUFValueType.ARRAY or isinstance(kv.value, (bool, str, float)):
        raise FormatError(f"{gguf.path}: {key} is a {kv.vtype.name}, not an integer")
    return int(kv.value)


def split_position(gguf: GGUFFile) -> tuple[int, int] | None:
    """``(split.no, split.count)`` of a part, or None for an unsplit file (no count, or 1).

    Raises:
        FormatError: a count without an index, or an index outside the count.
    """
    count = _int_value(gguf, SPLIT_COUNT)
    if count is None or count <= 1:
        return None
    index = _int_value(gguf, SPLIT_NO)
    if index is None or not 0 <= index < count:
        raise FormatError(
            f"{gguf.path}: {SPLIT_COUNT} is {count} but {SPLIT_NO} is "
            f"{'missing' if index is None else index}; the part is corrupt"
        )
    return index, count


@dataclass(frozen=True, slots=True)
class SplitSet:
    """The parts of a split GGUF set, in order; ``given`` is the index of the part asked for."""

    parts: tuple[GGUFFile, ...]
    given: int

    @property
    def first(self) -> GGUFFile:
        return self.parts[0]


def _sibling_paths(gguf: GGUFFile, index: int, count: int) -> list[Path]:
    match = _PART_NAME.match(gguf.path.name)
    if match is None or (int(match["no"]), int(match["count"])) != (index + 1, count):
        raise FormatError(
            f"{gguf.path}: part {index + 1} of {count} by its {SPLIT_NO}/{SPLIT_COUNT} keys, but "
            f"its name does not end in -{index + 1:05d}-of-{count:05d}.gguf; rename it so "
            "llama.cpp and qconv can find the other parts"
        )
    prefix = gguf.path.with_name(match["prefix"])
    return [
        prefix.with_name(f"{prefix.name}-{i + 1:05d}-of-{count:05d}.gguf") for i in range(count)
    ]


def _check_part(part: GGUFFile, index: int, count: int, n_tensors: int) -> None:
    position = split_position(part)
    if position is None or position[1] != count:
        found = "no split keys" if position is None else f"{SPLIT_COUNT} {position[1]}"
        raise FormatError(
            f"{part.path}: has {found}, but the set has {count} parts; it belongs to "
            "another set (download the parts again)"
        )
    if position[0] != index:
        raise FormatError(
            f"{part.path}: {SPLIT_NO} is {position[0]}, expected {index}; it belongs to another "
            "set or was renamed"
        )
    if _int_value(part, SPLIT_TENSORS_COUNT) != n_tensors:
        raise FormatError(
            f"{part.path}: {SPLIT_TENSORS_COUNT} is {_int_value(part, SPLIT_TENSORS_COUNT)}, the "
            f"first part says {n_tensors}; it belongs to another set"
        )


def read_split_set(gguf: GGUFFile, *, allow_alone: bool = False) -> SplitSet | None:
    """The whole set ``gguf`` is a part of, validated; None when ``gguf`` is not split.

    With ``allow_alone``, a part whose siblings are all absent is returned as a set of one (for
    ``qconv info`` on a single downloaded part); a set with only some parts missing is always an
    error.

    Raises:
        FormatError: a missing part, a part of another set, a wrong split.count or
            split.tensors.count, duplicate tensor names across parts.
    """
    position = split_position(gguf)
    if position is None:
        return None
    index, count = position
    paths = _sibling_paths(gguf, index, count)
    present = [path.is_file() for path in paths]
    if allow_alone and sum(present) == 1:
        return SplitSet((gguf,), 0)
    missing = [path.name for path, ok in zip(paths, present, strict=True) if not ok]
    if missing:
        raise FormatError(
            f"{gguf.path}: split set of {count} parts is incomplete, {missing[0]} is missing"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; put every part in the same folder"
        )
    parts = tuple(gguf if i == index else read_gguf(path) for i, path in enumerate(paths))
    n_tensors = _int_value(parts[0], SPLIT_TENSORS_COUNT)
    if n_tensors is None:
        raise FormatError(f"{parts[0].path}: {SPLIT_TENSORS_COUNT} is missing")
    seen: dict[str, Path] = {}
    for i, part in enumerate(parts):
        _check_part(part, i, count, n_tensors)
        for tensor in part.tensors:
            if tensor.name in seen:
                raise FormatError(
                    f"{part.path}: tensor {tensor.name!r} is also in {seen[tensor.name].name}; "
                    "the parts belong to different sets"
                )
            seen[tensor.name] = part.path
    if len(seen) != n_tensors:
        raise FormatError(
            f"{parts[0].path}: {SPLIT_TENSORS_COUNT} is {n_tensors} but the {count} parts hold "
            f"{len(seen)} tensors; the set is corrupt"
        )
    return SplitSet(parts, index)


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[Path], *, force: bool) -> Iterator[list[IO[bytes]]]:
    """Temporary files beside ``paths``, all renamed into place only when the block succeeds.

    Nothing appears at any of ``paths`` until every part is complete and synced; an error or
    Ctrl-C removes every temporary file. If a rename fails midway, the parts already renamed are
    removed again, so a set is never left half visible.

    Raises:
        OutputError: a path exists without ``force``, is a folder, or its folder is not writable.
    """
    for path in paths:
        if path.exists() and not force:
            raise OutputError(f"{path}: already exists; pass --force to overwrite it")
        if path.is_dir():
            raise OutputError(f"{path}: is a folder; give a file name for the output")
    temps: list[Path] = []
    streams: list[IO[bytes]] = []
    try:
        for path in paths:
            try:
                fd, name = tempfile.mkstemp(
                    prefix=f".{path.name}.", suffix=".partial", dir=path.parent or Path(".")
                )
            except OSError as e:
                raise OutputError(f"{path}: cannot create the output ({e.strerror or e})") from e
            temps.append(Path(name))
            streams.append(os.fdopen(fd, "wb", buffering=1024 * 1024))
        yield streams
        for stream in streams:
            stream.flush()
            os.fsync(stream.fileno())
            stream.close()
        _rename_all(temps, paths)
    finally:
        for stream in streams:
            stream.close()
        for temp in temps:
            temp.unlink(missing_ok=True)


def _rename_all(temps: Sequence[Path], paths: Sequence[Path]) -> None:
    done: list[Path] = []
    try:
        for temp, path in zip(temps, paths, strict=True):
            os.chmod(temp, 0o644)
            os.replace(temp, path)
            done.append(path)
    except BaseException as e:
        for path in done:
            path.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OutputError(f"{path}: cannot rename the finished part ({e.strerror or e})") from e
        raise
