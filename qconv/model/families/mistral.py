"""Mistral (dense): llama.cpp runs it as the `llama` architecture, Q/K permutation included.

convert_hf_to_gguf.py registers MistralForCausalLM on its Llama converter, so only the config
defaults differ (transformers.MistralConfig).
"""

from __future__ import annotations

from qconv.model.families.llama import llama_vocab_keys
from qconv.model.spec import ATTENTION_TENSORS, BASE_TENSORS, ArchSpec, derive_kv_heads

SPEC = ArchSpec(
    name="llama",
    hf_architectures=("MistralForCausalLM",),
    model_types=("mistral",),
    layer_tensors={**BASE_TENSORS, **ATTENTION_TENSORS},
    transforms={"attn_q": ("permute_qk",), "attn_k": ("permute_qk",)},
    # MistralConfig keeps head_dim None unless given (unlike LlamaConfig), so the converter writes
    # no key_length / value_length then; the rope dimension falls back to hidden_size / heads.
    derive=derive_kv_heads,
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
    tokenizer_hook=llama_vocab_keys,
)
