"""Llama 2/3, TinyLlama, SmolLM: the `llama` GGUF architecture.

llama.cpp applies RoPE to adjacent pairs of each head (GGML_ROPE_TYPE_NORM), while Hugging Face's
Llama rotates the two halves of each head. convert_hf_to_gguf.py therefore reorders the rows of
q_proj and k_proj (weights and biases): within each head, rows (0..d/2, d/2..d) are interleaved.
qconv does the same with a row permutation applied while reading, so no tensor is ever copied whole.
"""

from __future__ import annotations

from qconv.model.spec import ATTENTION_TENSORS, BASE_TENSORS, ArchSpec, derive_llama

SPEC = ArchSpec(
    name="llama",
    hf_architectures=("LlamaForCausalLM", "LLaMAForCausalLM"),
    model_types=("llama",),
    layer_tensors={**BASE_TENSORS, **ATTENTION_TENSORS},
    transforms={"attn_q": ("permute_qk",), "attn_k": ("permute_qk",)},
    # transformers.LlamaConfig defaults, which convert_hf_to_gguf.py sees through AutoConfig.
    derive=derive_llama,
    defaults={
        "vocab_size": 32000,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
    },
    trailing_keys=("vocab_size", "rope.dimension_count"),
    llama3_rope=True,
)
