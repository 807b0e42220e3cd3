"""What a GGUF file holds: per-type totals, parameters, bits per weight, and two renderings.

``describe`` turns a parsed header (:func:`qconv.gguf.reader.read_gguf`) into plain data;
``render_text``
draws the human report ``qconv info`` prints and ``to_json`` builds the document ``qconv info
--json`` prints. Nothing here reads tensor data or prints.

JSON document (``to_json``)::

    {
      "path": "model.gguf",
      "version": 3,                      # GGUF version (2 or 3)
      "alignment": 32,                   # data alignment in bytes
      "file_size": 145965344,            # bytes
      "data_offset": 1709312,            # where the data section starts
      "metadata": {                      # every key, in file order
        "general.architecture": {"type": "string", "value": "llama"},
        "general.file_type": {"type": "uint32", "value": 15, "name": "MOSTLY_Q4_K_M"},
        "tokenizer.ggml.tokens": {"type": "array", "item_type": "string", "count": 49152,
                                  "head": ["<|endoftext|>", "<|im_start|>", ...]}  # first 8
      },
      "tensors": [                       # in file order; shape in NumPy order (rows, cols)
        {"name": "token_embd.weight", "shape": [49152, 576], "type": "Q8_0",
         "offset": 0, "nbytes": 30081024}   # offset is relative to data_offset
      ],
      "types": {"Q8_0": {"tensors": 1, "bytes": 30081024}},   # largest first
      "parameters": 134515008,           # total elements over all tensors
      "bits_per_weight": 8.5,            # 8 * tensor bytes / parameters; null without tensors
      "split": null                      # or, for a part of a split set:
    }

    "split": {"no": 1, "count": 3,       # this is part 2 of 3 (split.no is 0-based)
              "parts": ["m-00001-of-00003.gguf", ...],   # null when the others are not beside it
              "set": {"tensors": 291, "file_size": …, "tensor_bytes": …, "parameters": …,
                      "bits_per_weight": 4.89, "file_type": "MOSTLY_Q4_K_M",
                      "types": {"Q4_K": {"tensors": 1, "bytes": 1}}}}

Value types are GGUF's names in lower case (uint8 … float64, bool, string, array). Floats keep their
shortest float32/float64 text; NaN and infinities become the strings "nan", "inf", "-inf" so the
document stays valid JSON. ``general.file_type`` also carries its llama_ftype ``name`` when known.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from qconv.errors import printable
from qconv.gguf.constants import GGMLType, GGUFValueType, Keys, LlamaFileType
from qconv.gguf.metadata import KV
from qconv.gguf.reader import GGUFFile, TensorInfo
from qconv.gguf.split import SplitSet, split_position

__all__ = ["Info", "SetTotals", "TypeTotal", "describe", "render_text", "to_json"]

JSON_ARRAY_HEAD = 8
TEXT_VALUE_WIDTH = 72


@dataclass(frozen=True, slots=True)
class TypeTotal:
    """How many tensors of one ggml type, their bytes and elements."""

    tensors: int
    bytes: int
    parameters: int


@dataclass(frozen=True, slots=True)
class SetTotals:
    """Which part of a split set a file is and, when every part is beside it, the set's totals."""

    no: int  # 0-based, as split.no
    count: int
    parts: list[str] | None
    tensors: int | None = None
    file_size: int | None = None
    types: dict[GGMLType, TypeTotal] | None = None
    parameters: int | None = None
    tensor_bytes: int | None = None
    bits_per_weight: float | None = None
    file_type: str | None = None  # the first part's general.file_type


@dataclass(frozen=True, slots=True)
class Info:
    """Plain data about one GGUF file; ``types`` is ordered by bytes, largest first."""

    path: str
    version: int
    alignment: int
    file_size: int
    data_offset: int
    kvs: list[KV]
    tensors: list[TensorInfo]
    types: dict[GGMLType, TypeTotal]
    parameters: int
    tensor_bytes: int
    bits_per_weight: float | None
    mix: str
    file_type: str | None
    split: SetTotals | None = None


def _n_elements(shape: tuple[int, ...]) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n


def _file_type_name(kvs: list[KV]) -> str | None:
    kv = next((kv for kv in kvs if kv.key == Keys.FILE_TYPE), None)
    if kv is None or isinstance(kv.value, (bool, list)) or not isinstance(kv.value, int):
        return None
    try:
        return LlamaFileType(kv.value).name
    except ValueError:
        return None


def _type_totals(tensors: Sequence[TensorInfo]) -> dict[GGMLType, TypeTotal]:
    counts: dict[GGMLType, list[int]] = {}
    for tensor in tensors:
        total = counts.setdefault(tensor.qtype, [0, 0, 0])
        total[0] += 1
        total[1] += tensor.nbytes
        total[2] += _n_elements(tensor.shape)
    ordered = sorted(counts.items(), key=lambda item: (-item[1][1], item[0].value))
    return {qtype: TypeTotal(*total) for qtype, total in ordered}


def _set_totals(gguf_file: GGUFFile, split_set: SplitSet | None) -> SetTotals | None:
    position = split_position(gguf_file)
    if position is None:
        return None
    no, count = position
    if split_set is None or len(split_set.parts) < count:
        return SetTotals(no, count, None)
    types = _type_totals([t for part in split_set.parts for t in part.tensors])
    parameters = sum(total.parameters for total in types.values())
    tensor_bytes = sum(total.bytes for total in types.values())
    return SetTotals(
        no,
        count,
        [str(part.path) for part in split_set.parts],
        tensors=sum(total.tensors for total in types.values()),
        file_size=sum(part.file_size for part in split_set.parts),
        types=types,
        parameters=parameters,
        tensor_bytes=tensor_bytes,
        bits_per_weight=8 * tensor_bytes / parameters if parameters else None,
        file_type=_file_type_name(split_set.first.kvs),
    )


def describe(gguf_file: GGUFFile, split_set: SplitSet | None = None) -> Info:
    """Summarize a parsed GGUF header: totals per tensor type, parameters and bits per weight.

    Bits per weight is ``8 * tensor bytes / parameters`` over every tensor, norms included, so it
    is the real average size of a weight in this file, not the nominal size of its main type.
    For a part of a split set, ``split_set`` (qconv.gguf.split.read_split_set) adds the whole
    set's totals.
    """
    types = _type_totals(gguf_file.tensors)
    parameters = sum(total.parameters for total in types.values())
    tensor_bytes = sum(total.bytes for total in types.values())
    return Info(
        path=str(gguf_file.path),
        version=gguf_file.version,
        alignment=gguf_file.alignment,
        file_size=gguf_file.file_size,
        data_offset=gguf_file.data_offset,
        kvs=list(gguf_file.kvs),
        tensors=list(gguf_file.tensors),
        types=types,
        parameters=parameters,
        tensor_bytes=tensor_bytes,
        bits_per_weight=8 * tensor_bytes / parameters if parameters else None,
        mix=", ".join(f"{qtype.name}: {total.tensors}" for qtype, total in types.items()),
        file_type=_file_type_name(gguf_file.kvs),
        split=_set_totals(gguf_file, split_set),
    )


def _plain_float(value: float, vtype: GGUFValueType) -> float | str:
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    # A FLOAT32 read back as a Python float shows 9.999999747378752e-06 for 1e-05: print the
    # shortest text that reads back as the same float32.
    return float(str(np.float32(value))) if vtype == GGUFValueType.FLOAT32 else value


def _json_scalar(value: Any, vtype: GGUFValueType) -> Any:
    if vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        return _plain_float(value, vtype)
    return value


def _python_items(values: Sequence[Any] | npt.NDArray[Any]) -> Iterator[Any]:
    """Items as Python values, one at a time: arrays from the reader are views of the file."""
    for value in values:
        yield value.item() if isinstance(value, np.generic) else value


def _json_kv(kv: KV) -> dict[str, Any]:
    if kv.vtype == GGUFValueType.ARRAY and kv.item_type is not None:
        head = [_json_scalar(v, kv.item_type) for v in _python_items(kv.value[:JSON_ARRAY_HEAD])]
        return {
            "type": "array",
            "item_type": kv.item_type.name.lower(),
            "count": len(kv.value),
            "head": head,
        }
    entry = {"type": kv.vtype.name.lower(), "value": _json_scalar(kv.value, kv.vtype)}
    name = _file_type_name([kv]) if kv.key == Keys.FILE_TYPE else None
    if name is not None:
        entry["name"] = name
    return entry


def to_json(info: Info) -> dict[str, Any]:
    """The JSON document described in this module's docstring (a dict ready for json.dumps)."""
    return {
        "path": info.path,
        "version": info.version,
        "alignment": info.alignment,
        "file_size": info.file_size,
        "data_offset": info.data_offset,
        "metadata": {kv.key: _json_kv(kv) for kv in info.kvs},
        "tensors": [
            {
                "name": t.name,
                "shape": list(t.shape),
                "type": t.qtype.name,
                "offset": t.offset,
                "nbytes": t.nbytes,
            }
            for t in info.tensors
        ],
        "types": _types_json(info.types),
        "parameters": info.parameters,
        "bits_per_weight": info.bits_per_weight,
        "split": _split_json(info.split),
    }


def _types_json(types: dict[GGMLType, TypeTotal]) -> dict[str, Any]:
    return {q.name: {"tensors": t.tensors, "bytes": t.bytes} for q, t in types.items()}


def _split_json(split: SetTotals | None) -> dict[str, Any] | None:
    if split is None:
        return None
    whole = None
    if split.types is not None:
        whole = {
            "tensors": split.tensors,
            "file_size": split.file_size,
            "tensor_bytes": split.tensor_bytes,
            "parameters": split.parameters,
            "bits_per_weight": split.bits_per_weight,
            "file_type": split.file_type,
            "types": _types_json(split.types),
        }
    return {"no": split.no, "count": split.count, "parts": split.parts, "set": whole}


def _text_item(value: Any, vtype: GGUFValueType) -> str:
    if vtype == GGUFValueType.STRING:
        return repr(value)
    if vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        return str(_plain_float(value, vtype))
    return str(value)


def _clip(text: str, width: int = TEXT_VALUE_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _text_value(kv: KV) -> str:
    if kv.vtype == GGUFValueType.ARRAY and kv.item_type is not None:
        prefix = f"[{kv.item_type.name.lower()} × {len(kv.value)}]"
        shown: list[str] = []
        budget = TEXT_VALUE_WIDTH - len(prefix)
        for item in _python_items(kv.value):
            text = _clip(_text_item(item, kv.item_type), budget)
            if shown and sum(len(s) + 2 for s in shown) + len(text) > budget:
                break
            shown.append(text)
        more = ", …" if len(shown) < len(kv.value) else ""
        return f"{prefix} {', '.join(shown)}{more}".rstrip()
    text = _clip(_text_item(kv.value, kv.vtype))
    name = _file_type_name([kv]) if kv.key == Keys.FILE_TYPE else None
    return f"{text} ({name})" if name else text


def _table(rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()) -> list[str]:
    """Rows as aligned columns; column indexes in ``right`` are right-aligned (numbers)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def _shape(shape: tuple[int, ...]) -> str:
    return " × ".join(str(dim) for dim in shape) or "scalar"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def _tensor_lines(info: Info) -> list[str]:
    lines = [f"tensors ({len(info.tensors)})"]
    if not info.tensors:
        return lines
    rows = [("name", "shape", "type", "bytes", "offset")]
    rows += [
        (printable(t.name), _shape(t.shape), t.qtype.name, f"{t.nbytes:,}", f"{t.offset:,}")
        for t in info.tensors
    ]
    lines += _table(rows, right=frozenset({3, 4}))
    totals = [("type", "tensors", "bytes", "parameters")]
    totals += [
        (qtype.name, str(total.tensors), f"{total.bytes:,}", f"{total.parameters:,}")
        for qtype, total in info.types.items()
    ]
    return [*lines, "", "types", *_table(totals, right=frozenset({1, 2, 3}))]


def _split_lines(split: SetTotals) -> list[str]:
    head = f"split: part {split.no + 1} of {split.count}"
    if split.types is None or split.parameters is None:
        return [f"{head} (the other parts are not beside it, so no set totals)"]
    bpw = "n/a" if split.bits_per_weight is None else f"{split.bits_per_weight:.2f}"
    mix = ", ".join(f"{qtype.name}: {total.tensors}" for qtype, total in split.types.items())
    return [
        f"{head}; whole set: {split.tensors} tensors, {_size(split.file_size or 0)} in "
        f"{split.count} files",
        f"set mix: {mix or 'no tensors'}",
        f"set file type: {split.file_type or 'not set'}",
        f"set parameters: {split.parameters:,}  tensor data: {_size(split.tensor_bytes or 0)}  "
        f"bits per weight: {bpw}",
    ]


def render_text(info: Info) -> str:
    """The human report: file facts, metadata, tensor table, totals per type, bits per weight."""
    lines = [
        f"{info.path}: GGUF v{info.version}, {_size(info.file_size)} ({info.file_size:,} bytes), "
        f"alignment {info.alignment}, data at byte {info.data_offset:,}",
        "",
        f"metadata ({len(info.kvs)} keys)",
    ]
    if info.kvs:
        lines += _table([(printable(kv.key), _text_value(kv)) for kv in info.kvs])
    lines += ["", *_tensor_lines(info)]
    bpw = "n/a" if info.bits_per_weight is None else f"{info.bits_per_weight:.2f}"
    lines += [
        "",
        f"mix: {info.mix or 'no tensors'}",
        f"file type: {info.file_type or 'not set'}",
        f"parameters: {info.parameters:,}  tensor data: {_size(info.tensor_bytes)}  "
        f"bits per weight: {bpw}",
    ]
    if info.split is not None:  # last, so `tail` shows the whole set's figures
        lines += ["", *_split_lines(info.split)]
    return "\n".join(lines) + "\n"
