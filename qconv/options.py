"""ConvertOptions: the one record of what a conversion was asked to do.

The CLI builds it from its flags, :func:`qconv.convert` from keyword arguments of the same names,
and the pipeline and planner read it; nothing threads the options one by one. Field names equal the
CLI flags (``--type`` is ``target``, ``--dry-run`` stays in the CLI, which only renders).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qconv.errors import UsageError

__all__ = ["ConvertOptions"]


@dataclass(frozen=True, slots=True)
class ConvertOptions:
    """Every option of ``qconv convert`` that the library acts on."""

    target: str = "q8_0"  # --type
    pure: bool = False
    revision: str | None = None
    arch: str | None = None
    tokenizer_pre: str | None = None
    no_vocab: bool = False
    metadata: tuple[str, ...] = ()
    metadata_file: Path | None = None
    strict: bool = False
    force: bool = False
    jobs: int | None = None
    # Kept as given: llama-quantize writes the path verbatim into quantize.imatrix.file, and
    # Path() would drop a leading "./".
    imatrix: str | Path | None = None
    allow_requantize: bool = False  # GGUF input: re-encode already-quantized tensors
    split_max_size: int = 0  # bytes per part of a split set; 0: no limit
    split_max_tensors: int = 0  # tensors per part; 0: no limit

    def updated(self, **changes: Any) -> ConvertOptions:
        """A copy with ``changes`` applied; an unknown name is a UsageError naming it.

        Raises:
            UsageError: a keyword that is not an option.
        """
        names = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise UsageError(
                f"unknown convert option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        if "metadata" in changes:
            changes["metadata"] = tuple(changes["metadata"] or ())
        return dataclasses.replace(self, **changes)
