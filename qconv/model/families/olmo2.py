"""OLMo 2: the `olmo2` GGUF architecture.

convert_hf_to_gguf.py's Olmo2Model (conversion/olmo.py:48-71) is a plain TextModel: no Q/K
permutation (llama.cpp runs olmo2 with NEOX RoPE), no vocab_size or rope.dimension_count keys.
OLMo 2 normalises after attention and after the MLP (``post_attention_layernorm`` ->
``post_attention_norm``, ``post_feedforward_layernorm`` -> ``post_ffw_norm``; there is no
input_layernorm) and has full-width q/k norms. When the config has ``sliding_window`` the
converter writes it and a per-layer pattern: from ``layer_types``, else every 4th layer full.
"""

from __future__ import annotations

from qconv.gguf.constants import GGUFValueType
from qconv.gguf.metadata import KV, kv_array, kv_uint32
from qconv.model.config import ModelConfig
from qconv.model.hparams import block_count
from qconv.model.spec import ATTENTION_TENSORS, ArchSpec, derive_kv_heads

LAYER_TENSORS = {
    **ATTENTION_TENSORS,
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "post_attention_layernorm": "post_attention_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def sliding_window_keys(spec: ArchSpec, config: ModelConfig) -> list[KV]:
    """sliding window and per-layer pattern (layer_types, else every 4th layer full)."""
    if "sliding_window" not in config:
        return []
    layer_types = config.optional_list("layer_types")
    if layer_types is not None:
        pattern = [t == "sliding_attention" for t in layer_types]
    else:
        pattern = [(i + 1) % 4 != 0 for i in range(block_count(config))]
    return [
        kv_uint32(f"{spec.name}.attention.sliding_window", config.integer("sliding_window")),
        kv_array(f"{spec.name}.attention.sliding_window_pattern", pattern, GGUFValueType.BOOL),
    ]


SPEC = ArchSpec(
    name="olmo2",
    hf_architectures=("Olmo2ForCausalLM",),
    model_types=("olmo2",),
    layer_tensors=LAYER_TENSORS,
    derive=derive_kv_heads,
    # transformers.Olmo2Config defaults.
    defaults={
        "vocab_size": 50304,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "max_position_embeddings": 2048,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    },
    family_keys=sliding_window_keys,
)
