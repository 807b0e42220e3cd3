"""A checkpoint as real ones ship: a model's folder name, a README.md model card with front
matter, generation_config.json sampling defaults and config.json's ``_name_or_path``.

The other cases sit in neutral ``tiny-*`` folders with none of these, so only this one proves the
whole ``general.*`` block (general.sampling.*, basename, finetune, organization, base model,
dataset, license, tags, languages; their order and types) through convert_hf_to_gguf and
llama-quantize. tests/test_card_goldens.py covers many more names and cards key by key.
"""

from __future__ import annotations

from card_cases import SMOLLM2_CARD
from family_fixtures import FamilyCase

from family_cases import TINY_LLAMA

# The SmolLM2 card of tests/card_cases.py with a dataset and a body after the front matter.
_FRONT, _, _ = SMOLLM2_CARD.rpartition("---\n")
_CARD = (
    _FRONT
    + "datasets:\n- HuggingFaceTB/smoltalk\n---\n\n\n# SmolLM2\n\n"
    + "SmolLM2 is a family of compact language models.\n"
)

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
        config=dict(TINY_LLAMA),
        tokenizer="arch/llama3/tokenizer",
        outtypes=("bf16", "q8_0"),
        ftypes=("q4_k_m",),
        dir_name="SmolLM2-135M-Instruct",
        name_or_path="HuggingFaceTB/SmolLM2-135M-Instruct",
        extra_files={"README.md": _CARD, "generation_config.json": _GENERATION},
    ),
]
