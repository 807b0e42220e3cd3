"""Qwen3 (dense): the `qwen3` GGUF architecture, with per-head RMS norms on q and k."""

from __future__ import annotations

from qconv.model.spec import ATTENTION_TENSORS, BASE_TENSORS, ArchSpec, derive_kv_heads

SPEC = ArchSpec(
    name="qwen3",
    hf_architectures=("Qwen3ForCausalLM",),
    model_types=("qwen3",),
    layer_tensors={
        **BASE_TENSORS,
        **ATTENTION_TENSORS,
        "self_attn.q_norm": "attn_q_norm",
        "self_attn.k_norm": "attn_k_norm",
    },
    derive=derive_kv_heads,
    defaults={
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "head_dim": 128,
        "num_key_value_heads": 32,
        "tie_word_embeddings": True,
    },
)
