"""Dense LlamaModel-like families (SmolLM3, Granite 3, OLMo 2/3, GLM-4, Mistral 3 / Ministral 3)
and the branches of the converter classes qconv maps (LlamaModel.set_vocab's vocabulary sizes,
Qwen2/Qwen3 pooling), on checkpoints made by transformers' own classes.

Each family has a case with bf16, q8_0 and the Q4_K_M mixture (SmolLM3 also Q6_K), and one more
case per config value the converter branches on (Granite's multipliers and head_dim, OLMo 3's
sliding-window pattern, GLM-4's partial rotary factor, Ministral 3's yarn parameters). Hidden
sizes of 256 and ffn sizes of 320 give rows that are and are not multiples of 256, so the K-quant
fallbacks are exercised.

Tokenizers not committed elsewhere are derived here from the tiny Llama 3 one, so no large file is
committed: one without post-processor (nothing says whether to add BOS before LlamaModel's 49152
branch appends add_bos_token), a GLM-4 layout (``<|endoftext|>``, ``<|user|>`` …) and Mistral's
tekken pre-tokenizer regex. A 49152-entry vocabulary is the tiny one padded with ``[PAD<i>]``
tokens, as the converter pads any vocabulary to config.json's vocab_size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from family_fixtures import FamilyCase

from family_cases import SMALL

_LLAMA3 = Path(__file__).resolve().parent.parent / "golden" / "arch" / "llama3" / "tokenizer"


def _llama3_files() -> tuple[dict[str, Any], dict[str, Any]]:
    tok_json = json.loads((_LLAMA3 / "tokenizer.json").read_text("utf-8"))
    tok_config = json.loads((_LLAMA3 / "tokenizer_config.json").read_text("utf-8"))
    return tok_json, tok_config


def _llama3_config(**changes: Any) -> dict[str, str]:
    """The Llama 3 tokenizer_config.json with ``changes``."""
    _, tok_config = _llama3_files()
    text = json.dumps({**tok_config, **changes}, ensure_ascii=False, indent=2)
    return {"tokenizer_config.json": text}


def _no_post_processor() -> dict[str, str]:
    """The Llama 3 tokenizer with no post-processor: transformers adds no BOS, and nothing tells
    the converter whether to."""
    tok_json, _ = _llama3_files()
    tok_json["post_processor"] = None
    return {"tokenizer.json": json.dumps(tok_json, ensure_ascii=False)}


_GLM4_ADDED = ("<|endoftext|>", "[gMASK]", "<sop>", "<|user|>", "<|assistant|>", "<|system|>")


def _glm4_tokenizer() -> dict[str, str]:
    """GLM-4-0414's special-token layout on the tiny Llama 3 vocabulary (same regex)."""
    tok_json, tok_config = _llama3_files()
    first = min(t["id"] for t in tok_json["added_tokens"])
    flags = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False}
    added = [
        {"id": first + i, "content": content, **flags, "special": True}
        for i, content in enumerate(_GLM4_ADDED)
    ]
    tok_json["added_tokens"] = added
    # Llama 3's ByteLevel step without its BOS template.
    tok_json["post_processor"] = tok_json["post_processor"]["processors"][0]
    decoder = {str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in added}
    tok_config = {
        "added_tokens_decoder": decoder,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 128000,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "chat_template": "[gMASK]<sop>{% for m in messages %}<|{{ m['role'] }}|>\n"
        "{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
    }
    return {
        "tokenizer.json": json.dumps(tok_json, ensure_ascii=False),
        "tokenizer_config.json": json.dumps(tok_config, ensure_ascii=False, indent=2),
    }


def _tekken_tokenizer() -> dict[str, str]:
    """The tiny Llama 3 vocabulary behind Mistral's tekken pre-tokenizer (as Mistral NeMo, Small 3
    and Ministral 3 publish it in tokenizer.json)."""
    tok_json, _ = _llama3_files()
    split = tok_json["pre_tokenizer"]["pretokenizers"][0]
    split["pattern"] = {"Regex": _TEKKEN_REGEX}
    return {"tokenizer.json": json.dumps(tok_json, ensure_ascii=False)}


# The Split regex of Mistral's tokenizer.json (llama.cpp's llama-vocab.cpp quotes it).
_TEKKEN_REGEX = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|"
    r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_PIXTRAL_TINY = {
    "model_type": "pixtral",
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "head_dim": 16,
    "image_size": 28,
    "patch_size": 14,
}


# Ministral 3's published rope parameters (yarn, 16x from 16384 positions).
_MINISTRAL3_ROPE = {
    "rope_type": "yarn", "rope_theta": 1000000.0, "factor": 16.0,
    "original_max_position_embeddings": 16384, "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0,
    "mscale_all_dim": 1.0, "llama_4_scaling_beta": 0.1,
}  # fmt: skip


def _ministral3_config(text: dict[str, Any]) -> dict[str, str]:
    """config.json as Ministral 3 publishes it (text model_type ministral3, yarn rope
    parameters), for the tensors of a transformers-made Mistral3ForConditionalGeneration."""
    text_config = {
        **text,
        "model_type": "ministral3",
        "head_dim": text["hidden_size"] // text["num_attention_heads"],
        "max_position_embeddings": 262144,
        "rms_norm_eps": 1e-05,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "rope_parameters": _MINISTRAL3_ROPE,
    }
    config = {
        "architectures": ["Mistral3ForConditionalGeneration"],
        "model_type": "mistral3",
        "image_token_index": 10,
        "multimodal_projector_bias": False,
        "projector_hidden_act": "gelu",
        "spatial_merge_size": 2,
        "vision_feature_layer": -1,
        "text_config": text_config,
        "vision_config": {**_PIXTRAL_TINY, "rope_theta": 10000.0},
        "torch_dtype": "bfloat16",
    }
    return {"config.json": json.dumps(config, indent=2)}


def _pooling(mode: str) -> dict[str, str]:
    """sentence-transformers' modules.json and 1_Pooling/config.json for one pooling mode."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    flags = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "lasttoken")
    pooling = {"word_embedding_dimension": _TINY["hidden_size"]}
    pooling.update(
        {f"pooling_mode_{f}": f in (mode, f"{mode}_token", f"{mode}_tokens") for f in flags}
    )
    return {
        "modules.json": json.dumps(modules, indent=2),
        "1_Pooling/config.json": json.dumps(pooling, indent=2),
    }


_TINY = {
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
}

CASES = [
    # --- LlamaModel.set_vocab's vocabulary-size branches (llama.py:143-158) -------------------
    # 49152 entries (SmolLM, SmolLM2, small Granite), with SmolLM's tokenizer layout: its
    # ByteLevel post-processor already gave add_bos_token = false, which the branch replaces in
    # place (no second key).
    FamilyCase(
        name="llama_vocab49152",
        hf_class="LlamaForCausalLM",
        model_type="llama",
        config={**_TINY, "vocab_size": 49152, "bos_token_id": 0, "eos_token_id": 0},
        tokenizer="arch/smollm/tokenizer",
        pre="smollm",
        outtypes=("bf16",),
        ftypes=(),
    ),
    # Same branch on the Mistral class, with nothing saying whether to add BOS before it: the
    # key is appended.
    FamilyCase(
        name="mistral_vocab49152",
        hf_class="MistralForCausalLM",
        model_type="mistral",
        config={**_TINY, "vocab_size": 49152, "bos_token_id": 296, "eos_token_id": 297},
        tokenizer="arch/llama3/tokenizer",
        outtypes=("bf16",),
        ftypes=(),
        extra_files=_no_post_processor(),
    ),
    # CodeLlama's 32016 entries: the infill tokens; only eot has a gguf-py writer method.
    FamilyCase(
        name="llama_codellama32016",
        hf_class="LlamaForCausalLM",
        model_type="llama",
        config={**_TINY, "vocab_size": 32016, "bos_token_id": 1, "eos_token_id": 2},
        tokenizer="arch/llama2/tokenizer",
        pre="default",
        outtypes=("bf16",),
        ftypes=(),
    ),
    # --- SmolLM3 (llama.py:425): LlamaModel under another name --------------------------------
    FamilyCase(
        name="smollm3_h256",
        hf_class="SmolLM3ForCausalLM",
        model_type="smollm3",
        config={**SMALL, "bos_token_id": 296, "eos_token_id": 297, "pad_token_id": None},
        tokenizer="arch/llama3/tokenizer",
        outtypes=("f32", "f16", "bf16", "q8_0"),
        ftypes=("q4_k_m", "q6_k"),
    ),
    # --- Granite 3 (granite.py:17-75) ----------------------------------------------------------
    # Granite 3.x's published multipliers, untied output.
    FamilyCase(
        name="granite_h256",
        outtypes=("f32", "f16", "bf16", "q8_0"),
        hf_class="GraniteForCausalLM",
        model_type="granite",
        config={
            **SMALL,
            "attention_multiplier": 0.0078125,
            "embedding_multiplier": 12.0,
            "residual_multiplier": 0.22,
            "logits_scaling": 8.0,
            "tie_word_embeddings": False,
            "bos_token_id": 296,
            "eos_token_id": 297,
        },
        tokenizer="arch/llama3/tokenizer",
    ),
    # A head_dim the converter drops (no key_length / value_length keys; a head_dim other than
    # hidden_size / heads would give a file llama.cpp refuses, from the converter too), a zero
    # multiplier it skips, and the rest at GraniteConfig's defaults (written as 1.0).
    FamilyCase(
        name="granite_head_dim",
        hf_class="GraniteForCausalLM",
        model_type="granite",
        config={**_TINY, "head_dim": 32, "vocab_size": 300, "residual_multiplier": 0.0},
        tokenizer="arch/llama3/tokenizer",
        outtypes=("bf16",),
        ftypes=(),
        # LlamaModel.set_vocab writes tokenizer_config.json's add_prefix_space first.
        extra_files=_llama3_config(add_prefix_space=False),
    ),
    # --- OLMo 2 / OLMo 3 (olmo.py:48-71) -------------------------------------------------------
    FamilyCase(
        name="olmo2_h256",
        outtypes=("f32", "f16", "bf16", "q8_0"),
        hf_class="Olmo2ForCausalLM",
        model_type="olmo2",
        config={**SMALL, "bos_token_id": 296, "eos_token_id": 297, "pad_token_id": 297},
        tokenizer="arch/llama3/tokenizer",
    ),
    # OLMo 2 config with a sliding_window but no layer_types: every 4th layer full.
    FamilyCase(
        name="olmo2_sliding_window",
        hf_class="Olmo2ForCausalLM",
        model_type="olmo2",
        config={**_TINY, "num_hidden_layers": 5, "vocab_size": 300, "sliding_window": 64},
        tokenizer="arch/llama3/tokenizer",
        outtypes=("bf16",),
        ftypes=(),
    ),
    # OLMo 3: Olmo3Config's derived layer_types (3 sliding, 1 full) and default window 4096.
    FamilyCase(
        name="olmo3_default_layers",
        hf_class="Olmo3ForCausalLM",
        model_type="olmo3",
        config={**_TINY, "num_hidden_layers": 4, "vocab_size": 300},
        tokenizer="arch/llama3/tokenizer",
        outtypes=("bf16", "q8_0"),
        ftypes=(),
    ),
    # OLMo 3 with its own layer_types and window.
    FamilyCase(
        name="olmo3_layer_types",
        hf_class="Olmo3ForCausalLM",
        model_type="olmo3",
        config={
            **_TINY,
            "num_hidden_layers": 3,
            "vocab_size": 300,
            "sliding_window": 128,
            "layer_types": ["full_attention", "sliding_attention", "full_attention"],
        },
        tokenizer="arch/llama3/tokenizer",
        outtypes=("bf16",),
        ftypes=(),
    ),
    # --- GLM-4-0414 (glm.py:17-88) -------------------------------------------------------------
    FamilyCase(
        name="glm4_h256",
        outtypes=("f32", "f16", "bf16", "q8_0"),
        hf_class="Glm4ForCausalLM",
        model_type="glm4",
        config={**SMALL, "head_dim": 64, "vocab_size": 304, "pad_token_id": 296},
        tokenizer="arch/llama3/tokenizer",
        pre="glm4",
        extra_files=_glm4_tokenizer(),
    ),
    # A partial rotary factor other than GLM-4's 0.5 sets rope.dimension_count.
    FamilyCase(
        name="glm4_rotary_quarter",
        hf_class="Glm4ForCausalLM",
        model_type="glm4",
        config={
            **_TINY,
            "head_dim": 32,
            "vocab_size": 304,
            "partial_rotary_factor": 0.25,
            "pad_token_id": 296,
        },
        tokenizer="arch/llama3/tokenizer",
        pre="glm4",
        outtypes=("bf16",),
        ftypes=(),
        extra_files=_glm4_tokenizer(),
    ),
    # --- Mistral 3 / Ministral 3 in Hugging Face format (mistral3.py:14-70) ---------------------
    # Mistral3ForConditionalGeneration: the text model under language_model., a vision tower and
    # projector left out, the tekken pre-tokenizer.
    FamilyCase(
        name="mistral3_h256",
        outtypes=("f32", "f16", "bf16", "q8_0"),
        hf_class="Mistral3ForConditionalGeneration",
        model_type="mistral3",
        config={
            "text_config": {**SMALL, "model_type": "mistral"},
            "vision_config": _PIXTRAL_TINY,
        },
        tokenizer="arch/llama3/tokenizer",
        pre="tekken",
        extra_files=_tekken_tokenizer(),
    ),
    # Ministral 3's config.json (text model_type ministral3, read raw by the converter): yarn
    # keys, the yarn log multiplier and the attention temperature scale.
    FamilyCase(
        name="ministral3_yarn",
        hf_class="Mistral3ForConditionalGeneration",
        model_type="mistral3",
        config={
            "text_config": {**_TINY, "vocab_size": 300, "model_type": "mistral"},
            "vision_config": _PIXTRAL_TINY,
        },
        tokenizer="arch/llama3/tokenizer",
        pre="tekken",
        outtypes=("bf16",),
        ftypes=(),
        extra_files={
            **_tekken_tokenizer(),
            **_ministral3_config({**_TINY, "vocab_size": 300}),
        },
    ),
    # --- Qwen2 / Qwen3 shipped for sentence-transformers (qwen.py:66-68) ----------------------
    # Qwen2Model.set_gguf_parameters ends with _try_set_pooling_type: the pooling of modules.json.
    FamilyCase(
        name="qwen3_embedding_lasttoken",
        hf_class="Qwen3ForCausalLM",
        model_type="qwen3",
        config={**_TINY, "head_dim": 32, "vocab_size": 300},
        tokenizer="arch/qwen3/tokenizer",
        pre="qwen2",
        outtypes=("bf16",),
        ftypes=(),
        extra_files=_pooling("lasttoken"),
    ),
    FamilyCase(
        name="qwen2_embedding_mean",
        hf_class="Qwen2ForCausalLM",
        model_type="qwen2",
        config={**_TINY, "vocab_size": 300},
        tokenizer="arch/qwen2/tokenizer",
        pre="qwen2",
        outtypes=("bf16",),
        ftypes=(),
        extra_files=_pooling("mean"),
    ),
]
