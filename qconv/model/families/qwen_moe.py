"""Qwen2-MoE and Qwen3-MoE: the `qwen2moe` and `qwen3moe` GGUF architectures.

convert_hf_to_gguf.py's ``Qwen2MoeModel`` (conversion/qwen.py:76-155; ``Qwen3MoeModel`` derives
from it) buffers each layer's per-expert ``mlp.experts.<e>.{gate,up,down}_proj`` tensors and, once a
layer has all ``n_expert × 3``, writes three stacks (``torch.stack(dim=0)``) in the order down,
gate, up as ``ffn_{down,gate,up}_exps``. It also accepts transformers v5's fused 3-D parameters:
``mlp.experts.gate_up_proj`` (n_expert, 2·n_ff, n_embd), split on its second-to-last axis with the
first half the gate, and ``mlp.experts.down_proj``. The router ``mlp.gate`` becomes
``ffn_gate_inp`` (F32, qconv.plan.plan.F32_KINDS). Qwen2-MoE adds an always-on shared expert and
its sigmoid gate ``shared_expert_gate`` (``ffn_gate_inp_shexp``, F32).
"""

from __future__ import annotations

from qconv.gguf.metadata import KV, kv_uint32
from qconv.model.config import ModelConfig
from qconv.model.spec import (
    ATTENTION_TENSORS,
    ArchSpec,
    ExpertSpec,
    FusedSpec,
    derive_kv_heads,
)

__all__ = ["EXPERTS", "FUSED_EXPERTS", "MOE_TENSORS", "QWEN2MOE", "QWEN3MOE", "expert_keys"]

EXPERTS = ExpertSpec(
    path=r"mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)",
    names={"gate_proj": "ffn_gate_exps", "up_proj": "ffn_up_exps", "down_proj": "ffn_down_exps"},
    order=("down_proj", "gate_proj", "up_proj"),
    count_keys=("num_local_experts", "num_experts"),
)
# transformers v5 layout: one 3-D parameter per projection and layer, already stacked.
FUSED_EXPERTS = (FusedSpec("mlp.experts.gate_up_proj", ("ffn_gate_exps", "ffn_up_exps"), ndim=3),)
# gguf-py's MODEL_TENSORS for these architectures have no dense ffn_{gate,up,down}: the converter
# refuses a checkpoint with dense layers (mlp_only_layers), and so does qconv.
MOE_TENSORS = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate": "ffn_gate_inp",
}
# The v5 layout's down projection needs no split: only a rename (the converter appends .weight).
_V5_DOWN = {"mlp.experts.down_proj": "ffn_down_exps"}


def expert_keys(spec: ArchSpec, config: ModelConfig) -> list[KV]:
    """Qwen2MoeModel.set_gguf_parameters after super(): each key only when config.json has it."""
    kvs = []
    keys = (
        ("expert_feed_forward_length", "moe_intermediate_size"),
        ("expert_shared_feed_forward_length", "shared_expert_intermediate_size"),
    )
    for suffix, key in keys:
        if (value := config.optional_int(key)) is not None:
            kvs.append(kv_uint32(f"{spec.name}.{suffix}", value))
    return kvs


QWEN3MOE = ArchSpec(
    name="qwen3moe",
    hf_architectures=("Qwen3MoeForCausalLM",),
    model_types=("qwen3_moe",),
    layer_tensors={
        **ATTENTION_TENSORS,
        **MOE_TENSORS,
        **_V5_DOWN,
        "self_attn.q_norm": "attn_q_norm",
        "self_attn.k_norm": "attn_k_norm",
    },
    experts=EXPERTS,
    fused=FUSED_EXPERTS,
    derive=derive_kv_heads,
    # transformers.Qwen3MoeConfig defaults (4.57.6); it has no head_dim default.
    defaults={
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "num_key_value_heads": 4,
        "num_experts": 128,
        "num_experts_per_tok": 8,
        "moe_intermediate_size": 768,
        "tie_word_embeddings": False,
    },
    family_keys=expert_keys,
)

QWEN2MOE = ArchSpec(
    name="qwen2moe",
    hf_architectures=("Qwen2MoeForCausalLM",),
    model_types=("qwen2_moe",),
    layer_tensors={
        **ATTENTION_TENSORS,
        **MOE_TENSORS,
        **_V5_DOWN,
        "mlp.shared_expert.gate_proj": "ffn_gate_shexp",
        "mlp.shared_expert.up_proj": "ffn_up_shexp",
        "mlp.shared_expert.down_proj": "ffn_down_shexp",
        "mlp.shared_expert_gate": "ffn_gate_inp_shexp",
    },
    experts=EXPERTS,
    fused=FUSED_EXPERTS,
    derive=derive_kv_heads,
    # transformers.Qwen2MoeConfig defaults (4.57.6).
    defaults={
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "num_key_value_heads": 16,
        "num_experts": 60,
        "num_experts_per_tok": 4,
        "moe_intermediate_size": 1408,
        "shared_expert_intermediate_size": 5632,
        "tie_word_embeddings": False,
    },
    family_keys=expert_keys,
)
