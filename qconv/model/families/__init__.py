"""One small data module per architecture family; SPECS lists them in lookup order."""

from __future__ import annotations

from qconv.model.families import (
    bert,
    gemma2,
    gemma3,
    glm4,
    granite,
    llama,
    mistral,
    mistral3,
    olmo2,
    olmo3,
    phi3,
    qwen2,
    qwen3,
    smollm3,
)
from qconv.model.spec import ArchSpec

SPECS: tuple[ArchSpec, ...] = (
    llama.SPEC, mistral.SPEC, qwen2.SPEC, qwen3.SPEC, bert.SPEC, gemma2.SPEC, gemma3.SPEC,
    phi3.SPEC, smollm3.SPEC, granite.SPEC, olmo2.SPEC, olmo3.SPEC, glm4.SPEC, mistral3.SPEC,
)  # fmt: skip
