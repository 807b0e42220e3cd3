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
    mixtral,
    olmo2,
    olmo3,
    olmoe,
    phi3,
    qwen2,
    qwen3,
    qwen_moe,
    smollm3,
)
from qconv.model.spec import ArchSpec

SPECS: tuple[ArchSpec, ...] = (
    llama.SPEC, mistral.SPEC, qwen2.SPEC, qwen3.SPEC, bert.SPEC, gemma2.SPEC, gemma3.SPEC,
    phi3.SPEC, smollm3.SPEC, granite.SPEC, olmo2.SPEC, olmo3.SPEC, glm4.SPEC, mistral3.SPEC,
    qwen_moe.QWEN3MOE, qwen_moe.QWEN2MOE, mixtral.SPEC, olmoe.SPEC,
)  # fmt: skip
