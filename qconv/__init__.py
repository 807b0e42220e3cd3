"""qconv: Hugging Face checkpoints to quantized GGUF in one streaming step.

Example:
    >>> import qconv
    >>> qconv.convert("./SmolLM2-135M", "smol-q8_0.gguf", target="q8_0")  # doctest: +SKIP
    >>> qconv.read_gguf("smol-q8_0.gguf").tensors[0].qtype  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
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

from qconv.errors import (
    FormatError,
    OutputError,
    QconvError,
    QuantizationError,
    SourceError,
    UsageError,
)
from qconv.format import GGMLType

if TYPE_CHECKING:
    from qconv.convert import convert, plan_conversion
    from qconv.reader import GGUFFile, read_gguf

# convert and read_gguf are imported on first use so `qconv --version` and `qconv info` stay fast.
_LAZY = {
    "convert": "qconv.convert",
    "plan_conversion": "qconv.convert",
    "read_gguf": "qconv.reader",
    "GGUFFile": "qconv.reader",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qconv' has no attribute {name!r}")
