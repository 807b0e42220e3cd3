"""Qwen2 / Qwen2.5: the `qwen2` GGUF architecture (q/k/v biases, NEOX RoPE, no permutation)."""

from __future__ import annotations

from qconv.model.spec import ATTENTION_TENSORS, BASE_TENSORS, ArchSpec, derive_kv_heads

SPEC = ArchSpec(
    name="qwen2",
    hf_architectures=("Qwen2ForCausalLM",),
    model_types=("qwen2",),
    layer_tensors={**BASE_TENSORS, **ATTENTION_TENSORS},
    derive=derive_kv_heads,
    defaults={
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "num_key_value_heads": 32,
        "tie_word_embeddings": False,
    },
)
