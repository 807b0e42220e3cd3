"""OLMoE: the `olmoe` GGUF architecture.

convert_hf_to_gguf.py's ``OlmoeModel`` (conversion/olmo.py:72-124) stacks experts as the Qwen MoE
converter does (down, gate, up; per-expert tensors only — a fused v5 tensor would fail there), and
its set_gguf_parameters re-adds ``attention.layer_norm_rms_epsilon`` as 1e-5 after the base keys.
gguf-py overwrites a duplicated key in place, so the file holds 1e-5 at the base key's position
whatever config.json says: :func:`derive_olmoe` sets that value before the base keys are built.
q_norm/k_norm here span all heads (hidden_size rows), not one head.
"""

from __future__ import annotations

from typing import Any

from qconv.model.families.qwen_moe import EXPERTS, MOE_TENSORS
from qconv.model.spec import ATTENTION_TENSORS, ArchSpec, derive_kv_heads


def derive_olmoe(values: dict[str, Any]) -> None:
    """OlmoeConfig derives the KV heads; the converter pins the RMS epsilon to 1e-5."""
    derive_kv_heads(values)
    values["rms_norm_eps"] = 1e-5


SPEC = ArchSpec(
    name="olmoe",
    hf_architectures=("OlmoeForCausalLM",),
    model_types=("olmoe",),
    layer_tensors={
        **ATTENTION_TENSORS,
        **MOE_TENSORS,
        "self_attn.q_norm": "attn_q_norm",
        "self_attn.k_norm": "attn_k_norm",
    },
    experts=EXPERTS,
    derive=derive_olmoe,
    # transformers.OlmoeConfig defaults (4.57.6).
    defaults={
        "vocab_size": 50304,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "num_experts": 64,
        "num_experts_per_tok": 8,
        "tie_word_embeddings": False,
    },
)
