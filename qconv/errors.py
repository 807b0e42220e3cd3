"""The one exception hierarchy qconv raises.

Every message says what went wrong, where (path, tensor, offset) and what to do about it. The
CLI maps each class to an exit code (``qconv.cli.EXIT_CODES``); the library never prints or exits.
"""

from __future__ import annotations

__all__ = [
    "FormatError",
    "OutputError",
    "QconvError",
    "QuantizationError",
    "SourceError",
    "UsageError",
    "printable",
]


class QconvError(Exception):
    """Base class: anything qconv reports to a user as a one-line error."""


class UsageError(QconvError):
    """Bad option combination or value (unknown type name, malformed --metadata)."""


class SourceError(QconvError):
    """The model cannot be read: missing files, hub unreachable, unsupported tensor dtype."""


class FormatError(QconvError):
    """A GGUF or safetensors file is corrupt, truncated or hostile."""


class QuantizationError(QconvError):
    """A tensor cannot be quantized as asked (non-finite values, row length, --strict)."""


class OutputError(QconvError):
    """The output cannot be written: exists without --force, disk full, short write."""


def printable(text: str) -> str:
    """Escape control characters so a hostile key or name cannot drive the terminal.

    Used for everything qconv prints that can hold names from a file: ``qconv info``'s tables,
    ``--dry-run``'s plan, warnings and error messages.
    """
    return text if text.isprintable() else repr(text)[1:-1]
