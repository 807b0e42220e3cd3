"""Granite 3 (dense): the `granite` GGUF architecture.

convert_hf_to_gguf.py's GraniteModel (conversion/granite.py:17-75) is LlamaModel (Q/K permutation,
vocab_size and rope.dimension_count, LlamaModel.set_vocab's quirks) plus four scale keys taken
from Granite's multipliers. It drops ``head_dim`` from the config before writing anything, so the
file has no key_length / value_length and the rope dimension is hidden_size / heads. A multiplier
that is zero (falsy) is not written.
"""

from __future__ import annotations

from typing import Any

from qconv.gguf.metadata import KV, kv_float32
from qconv.model.config import ModelConfig
from qconv.model.families.llama import llama_vocab_keys
from qconv.model.spec import ATTENTION_TENSORS, BASE_TENSORS, ArchSpec, derive_kv_heads

# config.json key -> GGUF key suffix, in the converter's order.
_SCALES = (
    ("attention_multiplier", "attention.scale"),
    ("embedding_multiplier", "embedding_scale"),
    ("residual_multiplier", "residual_scale"),
    ("logits_scaling", "logit_scale"),
)


def derive_granite(values: dict[str, Any]) -> None:
    """GraniteModel.set_gguf_parameters pops head_dim ("No head_dim support")."""
    derive_kv_heads(values)
    values.pop("head_dim", None)


def granite_keys(spec: ArchSpec, config: ModelConfig) -> list[KV]:
    """attention/embedding/residual/logit scale keys from the multipliers; head_dim dropped."""
    kvs = []
    for key, suffix in _SCALES:
        if value := config.optional_float(key):
            kvs.append(kv_float32(f"{spec.name}.{suffix}", value))
    return kvs


SPEC = ArchSpec(
    name="granite",
    hf_architectures=("GraniteForCausalLM",),
    model_types=("granite",),
    layer_tensors={**BASE_TENSORS, **ATTENTION_TENSORS},
    transforms={"attn_q": ("permute_qk",), "attn_k": ("permute_qk",)},
    derive=derive_granite,
    # transformers.GraniteConfig defaults.
    defaults={
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "embedding_multiplier": 1.0,
        "logits_scaling": 1.0,
        "residual_multiplier": 1.0,
        "attention_multiplier": 1.0,
        "tie_word_embeddings": False,
    },
    family_keys=granite_keys,
    trailing_keys=("vocab_size", "rope.dimension_count"),
    llama3_rope=True,
    tokenizer_hook=llama_vocab_keys,
)
