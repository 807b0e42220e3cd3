"""Typed reads of the tokenizer files beside a checkpoint (tokenizer.json, tokenizer_config.json).

These files are written by many tools and sometimes by hand, so every value qconv uses is checked
where it is read: a wrong type or a missing required key is one FormatError naming the file and
the key (``tokenizer.json: 'added_tokens[3].id' must be an integer ..., got '7'``), never a
TypeError or KeyError from deep inside the conversion. config.json has its own typed record,
:class:`qconv.model.config.ModelConfig`, whose messages these follow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from qconv.errors import FormatError

__all__ = [
    "MISSING",
    "TOKENIZER_CONFIG",
    "TOKENIZER_JSON",
    "added_tokens",
    "added_tokens_decoder",
    "dict_field",
    "float_field",
    "int_field",
    "list_field",
    "objects",
    "str_field",
]

MISSING: Any = object()  # "no default": the key is required


FLOAT32_MAX = 3.4028234663852886e38


def _field(
    doc: Mapping[str, Any],
    key: str,
    file: str,
    default: Any,
    label: str | None,
    accept: Callable[[Any], bool],
    expected: str,
) -> Any:
    """``doc[key]`` if ``accept`` likes it; ``default`` when absent or null; else FormatError."""
    value = doc.get(key)
    if value is None:
        if default is MISSING:
            raise FormatError(f"{file}: '{label or key}' is missing; it is required")
        return default
    if not accept(value):
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:39] + "…"
        raise FormatError(f"{file}: '{label or key}' must be {expected}, got {shown}")
    return value


def _is_int(value: Any, minimum: int) -> bool:
    return type(value) is int and value >= minimum


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value) and abs(float(value)) <= FLOAT32_MAX
    except OverflowError:  # an integer beyond any float
        return False


def int_field(
    doc: Mapping[str, Any],
    key: str,
    file: str = "config.json",
    default: Any = MISSING,
    *,
    minimum: int = 0,
    maximum: int = 2**32 - 1,
    label: str | None = None,
) -> Any:
    """An integer in ``minimum..maximum`` (never a bool, a float or a string of digits).

    The default maximum is GGUF's u32, which every size and count is stored as.
    """
    return _field(
        doc,
        key,
        file,
        default,
        label,
        lambda v: _is_int(v, minimum) and v <= maximum,
        f"an integer in {minimum}..{maximum}",
    )


def float_field(
    doc: Mapping[str, Any],
    key: str,
    file: str = "config.json",
    default: Any = MISSING,
    *,
    label: str | None = None,
) -> Any:
    """A finite number that fits a float32 (GGUF stores these as F32)."""
    return _field(doc, key, file, default, label, _is_number, "a finite number")


class FieldGetter(Protocol):
    """``getter(doc, key, file, default, label=...)``: ``doc[key]`` checked for one JSON type."""

    def __call__(
        self,
        doc: Mapping[str, Any],
        key: str,
        file: str = ...,
        default: Any = ...,
        *,
        label: str | None = ...,
    ) -> Any: ...


def _type_getter(kind: type, expected: str) -> FieldGetter:
    def get(
        doc: Mapping[str, Any],
        key: str,
        file: str = "config.json",
        default: Any = MISSING,
        *,
        label: str | None = None,
    ) -> Any:
        return _field(doc, key, file, default, label, lambda v: isinstance(v, kind), expected)

    return get


str_field = _type_getter(str, "a string")
dict_field = _type_getter(dict, "a JSON object")
list_field = _type_getter(list, "a list")


def objects(
    doc: Mapping[str, Any], key: str, file: str, default: Any = MISSING
) -> list[dict[str, Any]]:
    """A list of JSON objects (``added_tokens``, named chat templates), each checked."""
    items = list_field(doc, key, file, default)
    for i, item in enumerate(items):
        dict_field({key: item}, key, file, label=f"{key}[{i}]")
    return list(items)


TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"


def added_tokens_decoder(tok_config: dict[str, Any] | None) -> list[tuple[int, str, bool]]:
    """tokenizer_config.json's added_tokens_decoder as (id, content, special), each checked."""
    decoder = dict_field(tok_config or {}, "added_tokens_decoder", TOKENIZER_CONFIG, {})
    found = []
    for key, data in decoder.items():
        where = f"added_tokens_decoder[{key!r}]"
        if not key.isdigit():
            raise FormatError(f"{TOKENIZER_CONFIG}: {where}: the key must be a token id")
        entry = dict_field({where: data}, where, TOKENIZER_CONFIG)
        content = str_field(entry, "content", TOKENIZER_CONFIG, label=f"{where}.content")
        found.append((int(key), content, bool(entry.get("special"))))
    return found


def added_tokens(tok_json: dict[str, Any] | None) -> list[tuple[int, str, bool]]:
    """tokenizer.json's added_tokens as (id, content, special), each checked."""
    found = []
    for i, entry in enumerate(objects(tok_json or {}, "added_tokens", TOKENIZER_JSON, [])):
        token_id = int_field(entry, "id", TOKENIZER_JSON, label=f"added_tokens[{i}].id")
        content = str_field(entry, "content", TOKENIZER_JSON, label=f"added_tokens[{i}].content")
        found.append((token_id, content, bool(entry.get("special"))))
    return found
