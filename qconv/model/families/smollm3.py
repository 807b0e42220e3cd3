"""SmolLM3: the `smollm3` GGUF architecture, converted by llama.cpp exactly as Llama.

convert_hf_to_gguf.py's SmolLM3Model is LlamaModel with another architecture name
(conversion/llama.py:425): Q/K rows permuted to llama.cpp's RoPE layout, vocab_size and
rope.dimension_count after general.file_type, LlamaModel.set_vocab's quirks. SmolLM3Config has no
head_dim (so no key_length / value_length keys) and its NoPE layer list is not written.
"""

from __future__ import annotations

from qconv.model.families.llama import llama_vocab_keys
from qconv.model.spec import ATTENTION_TENSORS, BASE_TENSORS, ArchSpec, derive_kv_heads

SPEC = ArchSpec(
    name="smollm3",
    hf_architectures=("SmolLM3ForCausalLM",),
    model_types=("smollm3",),
    layer_tensors={**BASE_TENSORS, **ATTENTION_TENSORS},
    transforms={"attn_q": ("permute_qk",), "attn_k": ("permute_qk",)},
    derive=derive_kv_heads,
    # transformers.SmolLM3Config defaults.
    defaults={
        "vocab_size": 128256,
        "hidden_size": 2048,
        "intermediate_size": 11008,
        "num_hidden_layers": 36,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 2000000.0,
        "tie_word_embeddings": True,
    },
    trailing_keys=("vocab_size", "rope.dimension_count"),
    llama3_rope=True,
    tokenizer_hook=llama_vocab_keys,
)
