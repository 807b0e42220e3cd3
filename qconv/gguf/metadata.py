"""Typed GGUF metadata: the KV record, its constructors, and user overrides.

GGUF stores every value with an explicit type, so qconv never guesses a type at write time: each KV
carries its :class:`~qconv.gguf.constants.GGUFValueType`.
Guessing happens in one place only, when a user
writes ``--metadata key=value`` without a type, and follows simple visible rules (see
:func:`parse_override`).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qconv.errors import UsageError
from qconv.gguf.constants import INTEGER_VALUE_RANGES, GGUFValueType

__all__ = [
    "KV",
    "Scalar",
    "kv_array",
    "kv_bool",
    "kv_float32",
    "kv_string",
    "kv_uint32",
    "load_metadata_file",
    "merge_kvs",
    "metadata_file_kvs",
    "parse_override",
    "read_metadata_document",
    "validate_kv",
]

Scalar = int | float | bool | str
FLOAT32_MAX = 3.4028234663852886e38  # np.finfo(np.float32).max, without importing NumPy here

# Names accepted after ':' in --metadata key:type=value and in --metadata-file {"type": ...}.
TYPE_NAMES: dict[str, GGUFValueType] = {
    "u8": GGUFValueType.UINT8,
    "i8": GGUFValueType.INT8,
    "u16": GGUFValueType.UINT16,
    "i16": GGUFValueType.INT16,
    "u32": GGUFValueType.UINT32,
    "i32": GGUFValueType.INT32,
    "f32": GGUFValueType.FLOAT32,
    "bool": GGUFValueType.BOOL,
    "str": GGUFValueType.STRING,
    "u64": GGUFValueType.UINT64,
    "i64": GGUFValueType.INT64,
    "f64": GGUFValueType.FLOAT64,
}
TYPE_NAMES.update({t.name.lower(): t for t in GGUFValueType if t != GGUFValueType.ARRAY})
TYPE_NAMES["string"] = GGUFValueType.STRING


@dataclass(frozen=True, slots=True)
class KV:
    """One metadata record. For arrays ``value`` is a list and ``item_type`` its element type."""

    key: str
    vtype: GGUFValueType
    value: Any
    item_type: GGUFValueType | None = None


def kv_string(key: str, value: str) -> KV:
    return KV(key, GGUFValueType.STRING, value)


def kv_uint32(key: str, value: int) -> KV:
    return KV(key, GGUFValueType.UINT32, int(value))


def kv_float32(key: str, value: float) -> KV:
    return KV(key, GGUFValueType.FLOAT32, float(value))


def kv_bool(key: str, value: bool) -> KV:
    return KV(key, GGUFValueType.BOOL, bool(value))


def kv_array(key: str, items: Sequence[Any], item_type: GGUFValueType) -> KV:
    return KV(key, GGUFValueType.ARRAY, list(items), item_type)


def _check_scalar(key: str, vtype: GGUFValueType, value: Any) -> None:
    if vtype in INTEGER_VALUE_RANGES:
        low, high = INTEGER_VALUE_RANGES[vtype]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise UsageError(f"metadata {key}: {value!r} is not a {vtype.name} ({low}..{high})")
    elif vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"metadata {key}: {value!r} is not a number")
        # struct would raise OverflowError packing these; NaN and infinities pass as they are.
        limit = FLOAT32_MAX if vtype == GGUFValueType.FLOAT32 else sys.float_info.max
        try:
            too_large = math.isfinite(float(value)) and abs(float(value)) > limit
        except OverflowError:  # an integer beyond any float
            too_large = True
        if too_large:
            kind = "f32 (use :f64)" if vtype == GGUFValueType.FLOAT32 else "f64"
            raise UsageError(f"metadata {key}: {value!r} is too large for {kind}")
    elif vtype == GGUFValueType.BOOL:
        if not isinstance(value, bool):
            raise UsageError(f"metadata {key}: {value!r} is not true or false")
    elif vtype == GGUFValueType.STRING:
        if not isinstance(value, str):
            raise UsageError(f"metadata {key}: {value!r} is not a string")
        _check_utf8(key, value)
    else:
        raise UsageError(f"metadata {key}: nested arrays are not allowed (llama.cpp rejects them)")


def _check_utf8(key: str, text: str) -> None:
    # A non-UTF-8 byte in argv arrives as a lone surrogate (PEP 383); GGUF strings are UTF-8.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"metadata {key!r}: {text!r} is not valid UTF-8") from None


def validate_kv(kv: KV) -> None:
    """Check that ``kv.value`` fits its declared type.

    Raises:
        UsageError: the key is empty or the value does not fit (out of range, wrong kind).
    """
    if not kv.key:
        raise UsageError("metadata keys must not be empty")
    _check_utf8(kv.key, kv.key)
    if kv.vtype == GGUFValueType.ARRAY:
        if kv.item_type is None or not isinstance(kv.value, list):
            raise UsageError(f"metadata {kv.key}: an array needs a list and an element type")
        for item in kv.value:
            _check_scalar(kv.key, kv.item_type, item)
    else:
        _check_scalar(kv.key, kv.vtype, kv.value)


def _infer(value: Any) -> tuple[GGUFValueType, GGUFValueType | None]:
    """The type an untyped JSON/CLI value gets: bool, uint32/int32/int64/uint64, float32, string."""
    if isinstance(value, bool):
        return GGUFValueType.BOOL, None
    if isinstance(value, int):
        for vtype in (
            GGUFValueType.UINT32,
            GGUFValueType.INT32,
            GGUFValueType.INT64,
            GGUFValueType.UINT64,
        ):
            low, high = INTEGER_VALUE_RANGES[vtype]
            if low <= value <= high:
                return vtype, None
        raise UsageError(f"integer {value} does not fit any GGUF integer type")
    if isinstance(value, float):
        return GGUFValueType.FLOAT32, None
    if isinstance(value, str):
        return GGUFValueType.STRING, None
    if isinstance(value, list):
        if not value:
            raise UsageError("an empty array has no element type; give one with {'type': ...}")
        item_type, _ = _infer(value[0])
        if any(isinstance(v, float) for v in value) and item_type != GGUFValueType.STRING:
            item_type = GGUFValueType.FLOAT32
        if item_type in INTEGER_VALUE_RANGES:
            item_type = max((_infer(v)[0] for v in value), key=_integer_width)
        return GGUFValueType.ARRAY, item_type
    raise UsageError(f"cannot store {value!r} as GGUF metadata")


def _untyped(key: str, value: Any) -> KV:
    vtype, item_type = _infer(value)
    return KV(key, vtype, value, item_type)


def _integer_width(vtype: GGUFValueType) -> int:
    order = [GGUFValueType.UINT32, GGUFValueType.INT32, GGUFValueType.INT64, GGUFValueType.UINT64]
    return order.index(vtype) if vtype in order else -1


def _convert_text(text: str, vtype: GGUFValueType, key: str) -> Scalar:
    try:
        if vtype == GGUFValueType.BOOL:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0"):
                raise ValueError
            return lowered in ("true", "1")
        if vtype in INTEGER_VALUE_RANGES:
            return int(text, 0)
        if vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
            number = float(text)
            if not math.isfinite(number):
                raise ValueError
            return number
    except ValueError:
        raise UsageError(f"--metadata {key}: {text!r} is not a valid {vtype.name}") from None
    return text


def parse_override(spec: str) -> KV:
    """Parse one ``--metadata`` argument: ``key=value`` or ``key:type=value``.

    Without a type: ``true``/``false`` are BOOL, integers UINT32 (INT32/INT64/UINT64 when they do
    not fit), decimals FLOAT32, anything else STRING. Types: u8 i8 u16 i16 u32 i32 u64 i64 f32 f64
    bool str.

    Raises:
        UsageError: no ``=``, an empty key, an unknown type, or a value that does not fit.
    """
    name, sep, text = spec.partition("=")
    if not sep:
        raise UsageError(f"--metadata {spec!r}: expected KEY=VALUE or KEY:TYPE=VALUE")
    key, colon, type_name = name.partition(":")
    key = key.strip()
    if not key:
        raise UsageError(f"--metadata {spec!r}: the key is empty")
    if colon:
        try:
            vtype = TYPE_NAMES[type_name.strip().lower()]
        except KeyError:
            known = ", ".join(sorted(k for k in TYPE_NAMES if len(k) <= 4))
            raise UsageError(f"--metadata {spec!r}: unknown type {type_name!r} ({known})") from None
        kv = KV(key, vtype, _convert_text(text, vtype, key))
    else:
        kv = _untyped(key, _literal(text))
    validate_kv(kv)
    return kv


def _literal(text: str) -> Scalar:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text, 10)
    except ValueError:
        pass
    try:
        number = float(text)
        if math.isfinite(number):
            return number
    except ValueError:
        pass
    return text


def load_metadata_file(path: Path) -> list[KV]:
    """Read ``--metadata-file``: a JSON object of ``key: value`` or ``key: {"type", "value"}``.

    Raises:
        UsageError: unreadable file, not a JSON object, or a value that does not fit its type.
    """
    return metadata_file_kvs(read_metadata_document(path), path)


def read_metadata_document(path: Path) -> dict[str, Any]:
    """``--metadata-file``'s JSON object, not yet typed.

    Raises:
        UsageError: unreadable file or not a JSON object.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"--metadata-file {path}: cannot read JSON ({e})") from e
    except RecursionError:
        raise UsageError(f"--metadata-file {path}: JSON nested too deeply") from None
    if not isinstance(document, dict):
        raise UsageError(f"--metadata-file {path}: expected a JSON object of key: value")
    return document


def metadata_file_kvs(document: dict[str, Any], path: Path) -> list[KV]:
    """The typed KVs of a ``--metadata-file`` object (``path`` names it in errors).

    Raises:
        UsageError: a value that does not fit its type.
    """
    kvs = []
    for key, value in document.items():
        if isinstance(value, dict):
            kvs.append(_typed_entry(path, key, value))
        else:
            kvs.append(_untyped(key, value))
        validate_kv(kvs[-1])
    return kvs


def _typed_entry(path: Path, key: str, entry: dict[str, Any]) -> KV:
    type_name = str(entry.get("type", "")).lower()
    if "value" not in entry:
        raise UsageError(f"--metadata-file {path}: {key} needs a 'value'")
    value = entry["value"]
    if type_name.startswith("array"):
        item_name = type_name.partition(":")[2] or str(entry.get("item_type", "")).lower()
        if item_name not in TYPE_NAMES or not isinstance(value, list):
            raise UsageError(
                f"--metadata-file {path}: {key} needs 'array:<type>' and a list, e.g. array:u32"
            )
        return KV(key, GGUFValueType.ARRAY, value, TYPE_NAMES[item_name])
    if type_name not in TYPE_NAMES:
        raise UsageError(f"--metadata-file {path}: {key} has unknown type {type_name!r}")
    return KV(key, TYPE_NAMES[type_name], value)


def merge_kvs(base: Iterable[KV], overrides: Iterable[KV]) -> list[KV]:
    """``base`` with each override replacing a same-named key in place, or appended when new."""
    merged = {kv.key: kv for kv in base}
    for kv in overrides:
        merged[kv.key] = kv
    return list(merged.values())
