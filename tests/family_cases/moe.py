"""Mixture-of-experts families: Qwen3-MoE, Qwen2-MoE (shared expert), Mixtral (8 experts, the
llama-quantize ``n_expert == 8`` branches), OLMoE.

Per family one case whose rows are multiples of 256 (K-quants apply everywhere) and one with
hidden 64 (K-quant fallbacks), each converted to bf16 and q8_0 and quantized to Q4_K_M, Q3_K_M
and Q6_K. The Qwen cases also check transformers v5's fused expert layout (FamilyCase.v5_experts);
Mixtral and OLMoE's converters do not accept it.
"""

from __future__ import annotations

from typing import Any

from family_fixtures import FamilyCase

QUANTS = ("q4_k_m", "q3_k_m", "q6_k")


def _dims(hidden: int, heads: int = 4, kv_heads: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "hidden_size": hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": 4096,
        **extra,
    }


QWEN_TOKENS: dict[str, Any] = {"vocab_size": 300, "bos_token_id": 296, "eos_token_id": 296}

CASES = [
    FamilyCase(
        name="qwen3moe_h256",
        hf_class="Qwen3MoeForCausalLM",
        model_type="qwen3_moe",
        config=_dims(
            256,
            head_dim=64,
            intermediate_size=512,
            moe_intermediate_size=256,
            num_experts=4,
            num_experts_per_tok=2,
            rope_theta=1e6,
            **QWEN_TOKENS,
        ),
        tokenizer="arch/qwen2/tokenizer",
        pre="qwen2",
        ftypes=QUANTS,
        v5_experts=True,
    ),
    FamilyCase(
        name="qwen3moe_h64",
        hf_class="Qwen3MoeForCausalLM",
        model_type="qwen3_moe",
        config=_dims(
            64,
            head_dim=16,
            intermediate_size=96,
            moe_intermediate_size=32,
            num_experts=4,
            num_experts_per_tok=2,
            tie_word_embeddings=True,
            **QWEN_TOKENS,
        ),
        tokenizer="arch/qwen2/tokenizer",
        pre="qwen2",
        ftypes=QUANTS,
        v5_experts=True,
    ),
    FamilyCase(
        name="qwen2moe_h256",
        hf_class="Qwen2MoeForCausalLM",
        model_type="qwen2_moe",
        config=_dims(
            256,
            intermediate_size=512,
            moe_intermediate_size=256,
            shared_expert_intermediate_size=512,
            num_experts=4,
            num_experts_per_tok=2,
            **QWEN_TOKENS,
        ),
        tokenizer="arch/qwen2/tokenizer",
        pre="qwen2",
        ftypes=QUANTS,
        v5_experts=True,
    ),
    FamilyCase(
        name="qwen2moe_h64",
        hf_class="Qwen2MoeForCausalLM",
        model_type="qwen2_moe",
        config=_dims(
            64,
            intermediate_size=128,
            moe_intermediate_size=32,
            shared_expert_intermediate_size=96,
            num_experts=4,
            num_experts_per_tok=2,
            **QWEN_TOKENS,
        ),
        tokenizer="arch/qwen2/tokenizer",
        pre="qwen2",
        ftypes=QUANTS,
    ),
    FamilyCase(
        name="mixtral_h256",
        hf_class="MixtralForCausalLM",
        model_type="mixtral",
        config=_dims(
            256,
            intermediate_size=256,
            num_local_experts=8,
            num_experts_per_tok=2,
            vocab_size=384,
            bos_token_id=1,
            eos_token_id=2,
        ),
        tokenizer="arch/llama2/tokenizer",
        pre="default",
        ftypes=QUANTS,
    ),
    FamilyCase(
        name="mixtral_h64",
        hf_class="MixtralForCausalLM",
        model_type="mixtral",
        config=_dims(
            64,
            heads=8,
            intermediate_size=96,
            num_local_experts=8,
            num_experts_per_tok=2,
            vocab_size=384,
            bos_token_id=1,
            eos_token_id=2,
        ),
        tokenizer="arch/llama2/tokenizer",
        pre="default",
        ftypes=QUANTS,
    ),
    FamilyCase(
        # llama.cpp's olmoe graph sizes attn_k_norm by n_embd: multi-head attention only, as the
        # published OLMoE models are (the converter would write a GQA file llama.cpp refuses).
        name="olmoe_h256",
        hf_class="OlmoeForCausalLM",
        model_type="olmoe",
        config=_dims(
            256,
            kv_heads=4,
            intermediate_size=256,
            num_experts=4,
            num_experts_per_tok=2,
            rms_norm_eps=1e-6,
            vocab_size=300,
            bos_token_id=296,
            eos_token_id=297,
        ),
        tokenizer="arch/llama3/tokenizer",
        pre="llama-bpe",
        ftypes=QUANTS,
    ),
    FamilyCase(
        name="olmoe_h64",
        hf_class="OlmoeForCausalLM",
        model_type="olmoe",
        config=_dims(
            64,
            kv_heads=4,
            intermediate_size=96,
            num_experts=4,
            num_experts_per_tok=2,
            vocab_size=300,
            bos_token_id=296,
            eos_token_id=297,
        ),
        tokenizer="arch/llama3/tokenizer",
        pre="llama-bpe",
        ftypes=QUANTS,
    ),
]
