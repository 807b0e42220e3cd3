"""config.json, parsed and validated once, as llama.cpp's converter sees it.

llama.cpp's converter reads config.json through transformers' AutoConfig (transformers 4.57.6), so
a key the file omits takes the config class's default, and that default lands in the GGUF file.
:class:`ModelConfig` reproduces that view: ``text_config`` merged into the root (base.py:1352), then
the architecture's transformers defaults under the file's own values, then values transformers
derives (``head_dim`` for Llama). Every reader of the model's hyperparameters asks this record,
through typed accessors that fail with one line naming config.json and the key, so no other module
opens config.json or guesses a default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from qconv.errors import FormatError, SourceError

__all__ = ["ModelConfig"]

T = TypeVar("T")
_MISSING: Any = object()
U32_MAX = 2**32 - 1
F32_MAX = 3.4028234663852886e38  # np.finfo(np.float32).max


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """The model's hyperparameters; ``values`` is the merged mapping, ``path`` names config.json."""

    values: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def from_json(cls, document: Any, path: Path | None = None) -> ModelConfig:
        """Check the top level of a parsed config.json and merge ``text_config`` into the root.

        Raises:
            FormatError: the document is not an object, or ``architectures`` / ``model_type`` /
                ``text_config`` have the wrong type.
        """
        label = str(path or "config.json")
        if not isinstance(document, dict):
            raise FormatError(f"{label}: expected a JSON object, got {type(document).__name__}")
        values = dict(document)
        text_config = values.get("text_config")
        if text_config is not None:
            if not isinstance(text_config, dict):
                raise FormatError(f"{label}: 'text_config' must be an object")
            values = {**values, **text_config}
        config = cls(values, path)
        config.architectures  # noqa: B018 - validated eagerly: every later step reads it
        config.optional_str("model_type")
        return config

    def with_defaults(
        self,
        defaults: Mapping[str, Any],
        derive: Callable[[dict[str, Any]], None] | None = None,
    ) -> ModelConfig:
        """``defaults`` (transformers' config-class defaults) under this file's non-null values."""
        merged = dict(defaults)
        merged.update({k: v for k, v in self.values.items() if v is not None})
        if derive is not None:
            derive(merged)
        return ModelConfig(merged, self.path)

    # -- typed access -------------------------------------------------------------------------

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else "config.json"

    def __contains__(self, key: str) -> bool:
        return self.values.get(key) is not None

    @property
    def architectures(self) -> tuple[str, ...]:
        value = self.values.get("architectures")
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise FormatError(f"{self.label}: 'architectures' must be a list of class names")
        return tuple(value)

    @property
    def model_type(self) -> str:
        return self.optional_str("model_type") or ""

    def integer(self, key: str, default: int = _MISSING, *, minimum: int = 0) -> int:
        """An integer ≥ ``minimum``; ``default`` when absent, else SourceError (exit 3).

        Raises:
            SourceError: absent with no default. FormatError: not an integer, or below minimum.
        """
        value = self.optional_int(key, minimum=minimum)
        if value is not None:
            return value
        if default is _MISSING:
            raise SourceError(f"{self.label} has no {key!r}, which llama.cpp needs for this model")
        return default

    def optional_int(self, key: str, *, minimum: int = 0) -> int | None:
        value = self.values.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise self._wrong(key, value, "an integer")
        if value < minimum:
            raise FormatError(f"{self.label}: {key!r} is {value}; it must be at least {minimum}")
        if value > U32_MAX:  # every hyperparameter read here is stored as a GGUF u32
            raise FormatError(f"{self.label}: {key!r} is {value}; it must be at most {U32_MAX}")
        return value

    def number(self, key: str, default: float = _MISSING) -> float:
        value = self.optional_float(key)
        if value is not None:
            return value
        if default is _MISSING:
            raise SourceError(f"{self.label} has no {key!r}, which llama.cpp needs for this model")
        return default

    def optional_float(self, key: str) -> float | None:
        value = self.values.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._wrong(key, value, "a number")
        try:
            finite = math.isfinite(value) and abs(float(value)) <= F32_MAX
        except OverflowError:  # an integer beyond any float
            finite = False
        if not finite:  # every float read here is stored as a GGUF f32
            raise FormatError(f"{self.label}: {key!r} is {value}; it must be a finite float32")
        return float(value)

    def optional_str(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._wrong(key, value, "a string")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.values.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._wrong(key, value, "true or false")
        return value

    def optional_mapping(self, key: str) -> dict[str, Any] | None:
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._wrong(key, value, "an object")
        return value

    def optional_list(self, key: str) -> list[Any] | None:
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self._wrong(key, value, "a list")
        return value

    def first_key(self, keys: Iterable[str]) -> str | None:
        """The first of ``keys`` present with a non-null value (the converter's find_hparam)."""
        return next((k for k in keys if self.values.get(k) is not None), None)

    def first_int(self, keys: Iterable[str], *, minimum: int = 0) -> int | None:
        key = self.first_key(keys)
        return None if key is None else self.optional_int(key, minimum=minimum)

    def first_float(self, keys: Iterable[str]) -> float | None:
        key = self.first_key(keys)
        return None if key is None else self.optional_float(key)

    def _wrong(self, key: str, value: Any, expected: str) -> FormatError:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        return FormatError(f"{self.label}: {key!r} must be {expected}, got {shown}")
