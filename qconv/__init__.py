"""qconv: Hugging Face checkpoints to quantized GGUF in one streaming step.

Example:
    >>> import qconv
    >>> qconv.convert("./SmolLM2-135M", "smol-q8_0.gguf", target="q8_0")  # doctest: +SKIP
    >>> qconv.read_gguf("smol-q8_0.gguf").tensors[0].qtype  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from qconv.errors import (
    FormatError,
    OutputError,
    QconvError,
    QuantizationError,
    SourceError,
    UsageError,
)

if TYPE_CHECKING:
    from qconv.conversion import plan_conversion
    from qconv.gguf.constants import GGMLType
    from qconv.gguf.reader import GGUFFile, read_gguf
    from qconv.options import ConvertOptions
    from qconv.pipeline import convert

__version__ = "0.1.0"

__all__ = [
    "ConvertOptions",
    "FormatError",
    "GGMLType",
    "GGUFFile",
    "OutputError",
    "QconvError",
    "QuantizationError",
    "SourceError",
    "UsageError",
    "__version__",
    "convert",
    "plan_conversion",
    "read_gguf",
]

# Each public name the errors do not cover, and the module that defines it. They load on first
# use: `qconv info` and `qconv --version` then skip the conversion machinery (the model layer,
# tokenizers, planner and workers: about 0.1 s of imports). None of these names is also a module.
_DEFINED_IN = {
    "ConvertOptions": "qconv.options",
    "GGMLType": "qconv.gguf.constants",
    "GGUFFile": "qconv.gguf.reader",
    "convert": "qconv.pipeline",
    "plan_conversion": "qconv.conversion",
    "read_gguf": "qconv.gguf.reader",
}


def __getattr__(name: str) -> Any:
    home = _DEFINED_IN.get(name)
    if home is None:
        raise AttributeError(f"module 'qconv' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_DEFINED_IN})
