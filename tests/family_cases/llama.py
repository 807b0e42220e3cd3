"""Llama-family checkpoints made by transformers (the hand-written layouts are in arch_fixtures)."""

from __future__ import annotations

from family_fixtures import FamilyCase

CASES = [
    # SmolLM-sized vocabulary branch: LlamaModel.set_vocab writes add_bos_token = false when
    # vocab_size == 49152 (llama.py:156-158); tiny everything else.
    FamilyCase(
        name="llama_h256",
        hf_class="LlamaForCausalLM",
        model_type="llama",
        config={
            "hidden_size": 256,
            "intermediate_size": 320,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 300,
            "bos_token_id": 296,
            "eos_token_id": 297,
            "tie_word_embeddings": True,
        },
        tokenizer="arch/llama3/tokenizer",
        outtypes=("bf16", "q8_0"),
        ftypes=("q4_k_m", "q6_k"),
    ),
]
