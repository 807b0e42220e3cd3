"""Inputs of the ``general.*`` metadata golden table (tests/golden/card/general.json).

tools/make_card_goldens.py writes each case's folder (README.md, generation_config.json,
config.json), runs the vendored gguf-py's ``Metadata.load`` + ``set_gguf_meta_model`` on it as
convert_hf_to_gguf's ``prepare_metadata`` does, and records the KVs it writes, in order;
tests/test_card_goldens.py runs qconv's ``general_metadata`` on the same folders.
Folder names are real Hugging Face model names with their real parameter counts, plus a few
tiny counts that send a size in the name down llama.cpp's "context length" branch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class CardCase:
    folder: str  # checkpoint folder name
    total_params: int  # what gguf-py's get_total_parameter_count returns for the file
    card: str | None = None  # README.md
    generation: str | None = None  # generation_config.json, verbatim
    config: dict[str, Any] = field(default_factory=dict)  # config.json
    experts: tuple[int, int, int] | None = None  # (shared, per-expert params, expert count)
    override: dict[str, Any] | None = None  # convert_hf_to_gguf --metadata FILE's JSON object
    tag: str = ""  # tells cases with the same folder apart

    @property
    def id(self) -> str:
        return f"{self.folder}@{self.total_params}" + (f"#{self.tag}" if self.tag else "")


def write_card_case(case: CardCase, parent: Path) -> Path:
    directory = parent / case.folder
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(case.config), encoding="utf-8")
    if case.card is not None:
        (directory / "README.md").write_text(case.card, encoding="utf-8")
    if case.generation is not None:
        (directory / "generation_config.json").write_text(case.generation, encoding="utf-8")
    if case.override is not None:
        (parent / "override.json").write_text(json.dumps(case.override), encoding="utf-8")
    return directory


# Folder names alone (no card, no generation config): the name heuristics.
_NAMES = [
    ("Llama-3.1-8B-Instruct", 8_030_261_248),
    ("Meta-Llama-3-8B", 8_030_261_248),
    ("Llama-3.2-1B", 1_235_814_400),
    ("Llama-2-7b-chat-hf", 6_738_415_616),
    ("Llama-3.3-70B-Instruct", 70_553_706_496),
    ("Qwen3-30B-A3B-Instruct-2507", 30_532_122_624),
    ("Qwen3-0.6B", 751_632_384),
    ("Qwen2.5-7B-Instruct", 7_615_616_512),
    ("Qwen2.5-Coder-32B-Instruct", 32_763_876_352),
    ("Qwen1.5-MoE-A2.7B-Chat", 14_315_784_192),
    ("Qwen3-Embedding-0.6B", 595_776_512),
    ("Mixtral-8x7B-Instruct-v0.1", 46_702_792_704),
    ("Mistral-7B-Instruct-v0.3", 7_248_023_552),
    ("Mistral-Nemo-Instruct-2407", 12_247_782_400),
    ("gemma-3-4b-it", 3_880_263_040),
    ("gemma-2-9b-it", 9_241_705_984),
    ("gemma-3-270m-it", 268_098_176),
    ("Phi-3.5-mini-instruct", 3_821_079_552),
    ("Phi-3-medium-128k-instruct", 13_960_238_080),
    ("phi-4", 14_659_507_200),
    ("SmolLM2-135M-Instruct", 134_515_008),
    ("SmolLM2-1.7B-Instruct", 1_711_376_384),
    ("SmolLM3-3B", 3_075_098_624),
    ("OLMoE-1B-7B-0924", 6_919_161_856),
    ("bge-small-en-v1.5", 33_360_000),
    ("all-MiniLM-L6-v2", 22_713_216),
    ("xlm-roberta-large", 559_890_432),
    ("granite-3.3-2b-instruct", 2_533_539_840),
    ("DeepSeek-R1-Distill-Qwen-7B", 7_615_616_512),
    ("DeepSeek-V2-Lite-Chat", 15_706_484_224),
    ("TinyLlama-1.1B-Chat-v1.0", 1_100_048_384),
    ("bloom-7b1", 7_069_016_064),
    ("stablelm-2-1_6b", 1_644_515_328),
    ("falcon-40b", 41_303_945_216),
    ("mpt-7b-storywriter", 6_649_286_656),
    ("t5-v1_1-xl", 2_849_757_184),
    ("gpt2", 124_439_808),
    ("EXAONE-3.5-2.4B-Instruct", 2_405_327_104),
    ("Nous-Hermes-2-Mixtral-8x7B-DPO", 46_702_792_704),
    ("OpenHermes-2.5-Mistral-7B", 7_241_732_096),
    ("Llama-3-8B-Instruct-Gradient-1048k", 8_030_261_248),
    ("Qwen2-7B-Instruct-q4_k_m", 7_615_616_512),
    ("Meta-Llama-3.1-8B-Instruct-bf16", 8_030_261_248),
    ("Mistral-7B-Instruct-v0.2-GGUF", 7_241_732_096),
    ("gemma-7b-it-IQ4_XS", 8_537_680_896),
    ("Yi-1.5-34B-Chat-16K", 34_388_917_248),
    ("c4ai-command-r-v01", 34_980_831_232),
    ("My Model v2", 1_000_000),
    ("tiny-llama_h256", 1_195_264),
    ("5b1d8fd1f8bdbd3a1b3bdc6d9b7a3e14f02c6b06", 494_032_768),
    ("model--v2--", 1_000_000),
    ("Llama-3.1-8B-Instruct", 1_195_264),  # tiny model in a real model's folder: 8B > 7/8 off
    ("SmolLM2-135M-Instruct", 28_192),
    ("OLMoE-1B-7B-0924", 1_000_000_000),
    ("Mixtral-8x7B-Instruct-v0.1", 1_000),
]

QWEN3_GENERATION = (
    '{\n  "bos_token_id": 151643,\n  "do_sample": true,\n  "eos_token_id": [151645, 151643],\n'
    '  "pad_token_id": 151643,\n  "temperature": 0.6,\n  "top_k": 20,\n  "top_p": 0.95,\n'
    '  "transformers_version": "4.51.0"\n}\n'
)
_GENERATIONS = {
    "qwen3": QWEN3_GENERATION,
    "llama31": '{"bos_token_id": 128000, "do_sample": true, "eos_token_id": [128001, 128008, '
    '128009], "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.42.3"}',
    "qwen25": '{"do_sample": true, "repetition_penalty": 1.05, "temperature": 0.7, '
    '"top_p": 0.8, "top_k": 20}',
    "gemma3": '{"cache_implementation": "hybrid", "do_sample": true, "top_k": 64, "top_p": 0.95}',
    "all": json.dumps(
        {
            "sequence": "edskypmxt",
            "top_k": 40,
            "top_p": 0.9,
            "min_p": 0.05,
            "xtc_probability": 0.1,
            "xtc_threshold": 0.2,
            "temperature": 0.8,
            "penalty_last_n": 64,
            "penalty_repeat": 1.1,
            "repetition_penalty": 1.3,
            "mirostat": 2,
            "mirostat_tau": 5.0,
            "mirostat_eta": 0.1,
        }
    ),
    "int_temperature": '{"temperature": 1, "top_k": 0, "repetition_penalty": 1}',
    "nulls": '{"temperature": null, "top_k": null, "penalty_repeat": null, '
    '"repetition_penalty": 1.2, "top_p": 1.0}',
    "greedy": '{"do_sample": false, "max_new_tokens": 256}',
    "invalid": '{"temperature": 0.6,,}',
}

LLAMA31_CARD = """---
language:
- en
- de
- fr
- it
- pt
- hi
- es
- th
license: llama3.1
base_model: meta-llama/Meta-Llama-3.1-8B
pipeline_tag: text-generation
tags:
- facebook
- meta
- pytorch
- llama
- llama-3
extra_gated_prompt: >-
  ### LLAMA 3.1 COMMUNITY LICENSE AGREEMENT

  Llama 3.1 Version Release Date: July 23, 2024

  "Agreement" means the terms and conditions for use, reproduction, distribution and
  modification of the Llama Materials set forth herein.
extra_gated_fields:
  First Name: text
  Last Name: text
  Date of birth: date_picker
  Country: country
  geo: ip_location
  By clicking Submit below I accept the terms of the license: checkbox
extra_gated_description: The information you provide will be collected, stored, processed.
extra_gated_button_content: Submit
---

## Model Information
"""

QWEN3_CARD = """---
library_name: transformers
license: apache-2.0
license_link: https://huggingface.co/Qwen/Qwen3-30B-A3B-Instruct-2507/blob/main/LICENSE
pipeline_tag: text-generation
---

# Qwen3-30B-A3B-Instruct-2507
"""

SMOLLM2_CARD = """---
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
---
"""

THEBLOKE_CARD = """---
base_model: https://huggingface.co/mistralai/Mistral-7B-Instruct-v0.2
inference: false
license: apache-2.0
model_creator: Mistral AI_
model_name: Mistral 7B Instruct v0.2
model_type: mistral
pipeline_tag: text-generation
prompt_template: '<s>[INST] {prompt} [/INST]

  '
quantized_by: TheBloke
tags:
- finetuned
---
"""

LLAMA_CPP_KEYS_CARD = """---
name: "Custom Name"
author: 'Jane Doe'
version: v2.1
organization: Example Org   # comment after a value
description: |
  A model card description
  over two lines.
finetune: Chat
basename: Custom
size_label: 7B
url: https://example.com/paper
doi: 10.1234/abcd
uuid: 2ba4f3d6-6f1e-4a0c-8c3b-2b7a9e3f0c11
repo_url: https://github.com/example/custom
license: [mit, apache-2.0]
---
"""

MODEL_KEYS_CARD = """---
model_name: Model Name
model_author: Model Author
model_version: "1.5"
model_organization: Model Org
model_description: >-
  folded
  description
model_finetune: Instruct
model_basename: ModelBase
model_size_label: 3x1B
model_url: https://example.com
model_doi: 10.1/x
model_uuid: abc
model_repo_url: https://example.com/repo
license: other
license_name: qwen-research
license_link: LICENSE
language: en
languages:
- fr
tags: chat
pipeline_tag: text-generation
---
"""

BASE_MODELS_CARD = """---
base_model:
- mistralai/Mistral-7B-v0.1
- https://huggingface.co/meta-llama/Llama-2-7b-hf
- https://huggingface.co/datasets/foo/bar
- https://github.com/org/repo
- ./local-merge-v3
- name: Dict Base
  organization: Dict Org
  repo_url: https://example.com/dict
- Qwen/Qwen2.5-7B-Instruct
datasets:
- HuggingFaceTB/smoltalk
- https://huggingface.co/datasets/allenai/tulu-3-sft-mixture
- https://huggingface.co/teknium/OpenHermes-2.5
- name: Private Set
  version: "3"
  url: https://example.com/data
language:
- en
- no
- ja
---
"""

SINGULAR_CARD = """---
base_models: org/Base-Model-1B-v2
dataset: org/data-v1
license: mit
---
"""

SOURCES_CARD = """---
base_model_sources:
  - https://huggingface.co/org/model
dataset_sources: https://example.com/data.tar
---
"""

NULL_BASE_CARD = """---
base_model:
datasets: []
name:
model_name: From Model Name
tags:
---
"""

NORWAY_TABS_CARD = "---\nlanguage:\n\t- no\n\t- nb\ntags: [a, 'b c', \"d\"]\n---\n"
NO_FRONT_MATTER = "# SmolLM2\n\nlicense: mit\n"
UNCLOSED_CARD = "---\nlicense: mit\ntags:\n- x\n"
EMPTY_FRONT_MATTER = "---\n---\n# body\n"

_CARDS = [
    ("Llama-3.1-8B-Instruct", 8_030_261_248, LLAMA31_CARD, "llama31"),
    ("Qwen3-30B-A3B-Instruct-2507", 30_532_122_624, QWEN3_CARD, "qwen3"),
    ("SmolLM2-135M-Instruct", 134_515_008, SMOLLM2_CARD, None),
    ("mistral-7b-instruct-v0.2.Q4_K_M", 7_241_732_096, THEBLOKE_CARD, None),
    ("custom-model", 7_000_000_000, LLAMA_CPP_KEYS_CARD, "all"),
    ("some-model-3B", 3_000_000_000, MODEL_KEYS_CARD, "int_temperature"),
    ("Merge-7B-slerp", 7_241_732_096, BASE_MODELS_CARD, "nulls"),
    ("Base-Model-1B-v2-Instruct", 1_100_000_000, SINGULAR_CARD, "greedy"),
    ("sources", 1_000_000, SOURCES_CARD, "invalid"),
    ("null-base-1B", 1_000_000_000, NULL_BASE_CARD, "qwen25"),
    ("nb-gpt-j-6B", 6_053_381_344, NORWAY_TABS_CARD, "gemma3"),
    ("SmolLM2-360M", 361_821_120, NO_FRONT_MATTER, None),
    ("unclosed", 1_000, UNCLOSED_CARD, None),
    ("empty-front-matter", 1_000, EMPTY_FRONT_MATTER, None),
]

# config.json _name_or_path: used when it holds at most one '/', before the folder name.
_NAME_OR_PATH = [
    ("snapshot", 134_515_008, "HuggingFaceTB/SmolLM2-135M-Instruct"),
    ("Llama-3.1-8B-Instruct", 8_030_261_248, "meta-llama/Llama-3.1-8B-Instruct"),
    ("checkpoint-500", 7_241_732_096, "./Mistral-7B-v0.1"),
    ("Qwen2-7B", 7_615_616_512, "/home/user/models/Qwen2-7B"),
    ("gemma-3-4b-it", 3_880_263_040, "google/gemma-3-4b-pt"),
    ("my-finetune", 1_000_000, ""),
    ("org-less", 1_000_000, "Qwen3-0.6B-Base"),
]

CASES: list[CardCase] = [CardCase(folder, total) for folder, total in _NAMES]
CASES += [
    CardCase(folder, total, card=card, generation=_GENERATIONS.get(gen or ""), tag="card")
    for folder, total, card, gen in _CARDS
]
CASES += [
    CardCase(folder, total, config={"_name_or_path": name}, tag="name_or_path")
    for folder, total, name in _NAME_OR_PATH
]
CASES += [
    CardCase(
        "Qwen3-30B-A3B-Instruct-2507",
        30_532_122_624,
        card=SMOLLM2_CARD,
        config={"_name_or_path": "Qwen/Qwen3-30B-A3B-Instruct-2507"},
        tag="card+name_or_path",
    ),
    # llama.cpp's --metadata override file: replaces, clears (null) and adds values in place.
    CardCase(
        "Qwen3-30B-A3B-Instruct-2507",
        30_532_122_624,
        card=LLAMA31_CARD,
        generation=QWEN3_GENERATION,
        override={
            "general.name": "Override Name",
            "general.author": "Someone",
            "general.quantized_by": "qconv",
            "general.size_label": "30B",
            "general.license.name": "custom",
            "general.url": "https://example.com/model",
            "general.source.repo_url": "https://example.com/source",
            "general.sampling.top_k": 40,
            "general.sampling.top_p": None,
            "general.sampling.min_p": 0.05,
            "general.sampling.mirostat": 1,
            "general.sampling.sequence": "kt",
            "general.base_models": [
                {"name": "Base", "organization": "Org", "repo_url": "https://x.org/base"},
                {"version": "v2"},
            ],
            "general.datasets": [{"name": "Data", "url": "https://x.org/data"}],
            "general.tags": ["override"],
            "general.languages": ["de", "fr"],
        },
        tag="override",
    ),
    CardCase(
        "Llama-3.1-8B-Instruct",
        8_030_261_248,
        card=SMOLLM2_CARD,
        override={"general.name": None, "general.basename": None, "general.tags": None},
        tag="override-null",
    ),
    # A MoE checkpoint whose name gives no size: the computed <experts>x<size> label.
    CardCase("moe-model", 6_919_161_856, experts=(1_268_000_000, 706_000_000, 8), tag="moe"),
    CardCase("Qwen3-MoE", 3_000_000, generation=QWEN3_GENERATION, experts=(1, 2, 4), tag="moe"),
]
