"""A checkpoint as real ones ship: a model's folder name, a README.md model card with front
matter, generation_config.json sampling defaults and config.json's ``_name_or_path``.

The other cases sit in neutral ``tiny-*`` folders with none of these, so only this one proves the
whole ``general.*`` block (general.sampling.*, basename, finetune, organization, base model,
dataset, license, tags, languages; their order and types) through convert_hf_to_gguf and
llama-quantize. tests/test_card_goldens.py covers many more names and cards key by key.
"""

from __future__ import annotations

from family_fixtures import FamilyCase

_CARD = """---
library_name: transformers
license: apache-2.0
language:
- en
pipeline_tag: text-generation
tags:
- safetensors
- onnx
- transformers.js
base_model:
- HuggingFaceTB/SmolLM2-135M
datasets:
- HuggingFaceTB/smoltalk
---


# SmolLM2

SmolLM2 is a family of compact language models.
"""

_GENERATION = """{
  "bos_token_id": 296,
  "do_sample": true,
  "eos_token_id": 297,
  "repetition_penalty": 1.05,
  "temperature": 0.6,
  "top_k": 20,
  "top_p": 0.95,
  "transformers_version": "4.57.6"
}
"""

CASES = [
    FamilyCase(
        name="llama_model_card",
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
        ftypes=("q4_k_m",),
        dir_name="SmolLM2-135M-Instruct",
        name_or_path="HuggingFaceTB/SmolLM2-135M-Instruct",
        extra_files={"README.md": _CARD, "generation_config.json": _GENERATION},
    ),
]
