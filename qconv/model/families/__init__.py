"""One small data module per architecture family; SPECS lists them in lookup order."""

from __future__ import annotations

from qconv.model.families import bert, gemma2, gemma3, llama, mistral, phi3, qwen2, qwen3
from qconv.model.spec import ArchSpec

SPECS: tuple[ArchSpec, ...] = (
    llama.SPEC, mistral.SPEC, qwen2.SPEC, qwen3.SPEC, bert.SPEC, gemma2.SPEC, gemma3.SPEC,
    phi3.SPEC,
)  # fmt: skip
