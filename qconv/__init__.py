"""qconv: Hugging Face checkpoints to quantized GGUF in one streaming step.

Example:
    >>> import qconv
    >>> qconv.pipeline("./SmolLM2-135M", "smol-q8_0.gguf", target="q8_0")  # doctest: +SKIP
    >>> qconv.read_gguf("smol-q8_0.gguf").tensors[0].qtype  # doctest: +SKIP
"""

from __future__ import annotations

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

from qconv.conversion import plan_conversion
from qconv.errors import (
    FormatError,
    OutputError,
    QconvError,
    QuantizationError,
    SourceError,
    UsageError,
)
from qconv.gguf.constants import GGMLType
from qconv.gguf.reader import GGUFFile, read_gguf
from qconv.options import ConvertOptions
from qconv.pipeline import convert
