"""Llama-family checkpoints made by transformers (the hand-written layouts are in arch_fixtures)."""

from __future__ import annotations

from family_fixtures import FamilyCase

from family_cases import TINY_LLAMA

CASES = [
    # SmolLM-sized vocabulary branch: LlamaModel.set_vocab writes add_bos_token = false when
    # vocab_size == 49152 (llama.py:156-158); tiny everything else.
    FamilyCase(
        name="llama_h256",
        hf_class="LlamaForCausalLM",
        model_type="llama",
        config=dict(TINY_LLAMA),
        tokenizer="arch/llama3/tokenizer",
        outtypes=("bf16", "q8_0"),
        ftypes=("q4_k_m", "q6_k"),
    ),
]
