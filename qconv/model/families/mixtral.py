"""Mixtral: llama.cpp runs it as the `llama` architecture with experts.

convert_hf_to_gguf.py registers MixtralForCausalLM on its Llama converter (conversion/llama.py:
267-291): q_proj/k_proj rows are permuted as for Llama, and each layer's per-expert
``block_sparse_moe.experts.<e>.w{1,2,3}`` tensors are stacked (``torch.stack(dim=0)``) once the
layer has all ``n_expert × 3``, in the order w1, w2, w3 — gate, down, up — as
``ffn_{gate,down,up}_exps``. The router ``block_sparse_moe.gate`` becomes ``ffn_gate_inp`` (F32).
Unlike the Qwen MoE converter, this one has no path for transformers v5's fused expert tensors.
"""

from __future__ import annotations

from qconv.model.spec import ATTENTION_TENSORS, BASE_TENSORS, ArchSpec, ExpertSpec, derive_kv_heads

SPEC = ArchSpec(
    name="llama",
    hf_architectures=("MixtralForCausalLM",),
    model_types=("mixtral",),
    layer_tensors={
        **BASE_TENSORS,
        **ATTENTION_TENSORS,
        "block_sparse_moe.gate": "ffn_gate_inp",
    },
    transforms={"attn_q": ("permute_qk",), "attn_k": ("permute_qk",)},
    experts=ExpertSpec(
        path=r"block_sparse_moe\.experts\.(\d+)\.(w[123])",
        names={"w1": "ffn_gate_exps", "w2": "ffn_down_exps", "w3": "ffn_up_exps"},
        order=("w1", "w2", "w3"),
        count_keys=("num_local_experts",),
    ),
    # transformers.MixtralConfig defaults (4.57.6): head_dim stays None (rope dims from
    # hidden_size / heads), so only the KV heads are derived.
    derive=derive_kv_heads,
    defaults={
        "vocab_size": 32000,
        "max_position_embeddings": 4096 * 32,
        "rms_norm_eps": 1e-5,
        "rope_theta": 1e6,
        "num_key_value_heads": 8,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "tie_word_embeddings": False,
    },
    trailing_keys=("vocab_size", "rope.dimension_count"),
    llama3_rope=True,
)
