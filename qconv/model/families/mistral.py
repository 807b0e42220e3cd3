"""Mistral (dense): llama.cpp runs it as the `llama` architecture, Q/K permutation included.

convert_hf_to_gguf.py registers MistralForCausalLM on its Llama converter, so only the config
defaults differ (transformers.MistralConfig).
"""

from __future__ import annotations

from qconv.model.spec import ATTENTION_TENSORS, BASE_TENSORS, ArchSpec, derive_llama

SPEC = ArchSpec(
    name="llama",
    hf_architectures=("MistralForCausalLM",),
    model_types=("mistral",),
    layer_tensors={**BASE_TENSORS, **ATTENTION_TENSORS},
    transforms={"attn_q": ("permute_qk",), "attn_k": ("permute_qk",)},
    derive=derive_llama,
    defaults={
        "vocab_size": 32000,
        "max_position_embeddings": 4096 * 32,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "num_key_value_heads": 8,
        "tie_word_embeddings": False,
    },
    trailing_keys=("vocab_size", "rope.dimension_count"),
    llama3_rope=True,
)
