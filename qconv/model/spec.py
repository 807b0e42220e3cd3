"""The table one architecture family is made of, and the tensor names most families share.

A family module (llama.py, qwen2.py, …) is a single :class:`Family` value: which config.json
``architectures`` / ``model_type`` select it, how HF tensor names map to GGUF names, whether Q/K
rows are permuted, and the config defaults transformers fills in (convert_hf_to_gguf.py reads
config.json through transformers' AutoConfig, so a missing key takes the transformers default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# HF names outside the layers -> GGUF names (llama.cpp's gguf-py tensor_mapping.py vocabulary).
GLOBAL_TENSORS: Mapping[str, str] = {
    "model.embed_tokens": "token_embd",
    "model.norm": "output_norm",
    "lm_head": "output",
}

# Inside ``model.layers.N.``: HF module path -> GGUF name inside ``blk.N.``.
BASE_TENSORS: Mapping[str, str] = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
ATTENTION_TENSORS: Mapping[str, str] = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
}

# Buffers some checkpoints still carry; llama.cpp recomputes them, its converter drops them.
DROPPED_SUFFIXES = (".rotary_emb.inv_freq", ".attn.masked_bias", ".attn.bias")


@dataclass(frozen=True, slots=True)
class Family:
    """One architecture family: everything qconv needs to write a file llama.cpp runs."""

    name: str  # GGUF general.architecture
    hf_architectures: tuple[str, ...]
    model_types: tuple[str, ...]
    layer_tensors: Mapping[str, str]
    permute_qk: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # Keys convert_hf_to_gguf.py writes after general.file_type for this family, in its order.
    trailing_keys: tuple[str, ...] = ()
    # Llama 3 style rope scaling is stored as a rope_freqs tensor instead of metadata.
    llama3_rope: bool = False
