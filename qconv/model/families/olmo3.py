"""OLMo 3: written as `olmo2` by the same converter class, with sliding-window attention.

transformers.Olmo3Config defaults ``sliding_window`` to 4096 and derives ``layer_types`` (every
4th layer full attention) when config.json has none; the converter sees both through AutoConfig.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from qconv.model.families import olmo2
from qconv.model.spec import derive_kv_heads


def derive_olmo3(values: dict[str, Any]) -> None:
    derive_kv_heads(values)
    layers = values.get("num_hidden_layers")
    if values.get("layer_types") is None and isinstance(layers, int):
        values["layer_types"] = [
            "sliding_attention" if (i + 1) % 4 != 0 else "full_attention" for i in range(layers)
        ]


SPEC = replace(
    olmo2.SPEC,
    hf_architectures=("Olmo3ForCausalLM",),
    model_types=("olmo3",),
    derive=derive_olmo3,
    defaults={**olmo2.SPEC.defaults, "sliding_window": 4096},
)
