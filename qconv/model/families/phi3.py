"""Phi-3, Phi-3.5 and Phi-4(-mini): the `phi3` GGUF architecture (conversion/phi.py:39-212).

llama.cpp runs Phi-3's fused projections as they are: ``qkv_proj`` becomes ``attn_qkv`` and
``gate_up_proj`` becomes ``ffn_up`` (llama.cpp splits them at run time). Long-context models
(LongRoPE: ``rope_scaling`` with ``long_factor`` / ``short_factor``) get the factors as two F32
tensors, ``rope_factors_long`` / ``rope_factors_short``, plus ``rope.scaling.attn_factor``, which
the converter sets while generating those tensors and so lands right after general.architecture.
Phi3MiniModel.set_gguf_parameters does not call TextModel's: its keys come in its own order, with
``original_max_position_embeddings`` required and the sliding window written as 0 when absent
(Phi-4). Phi-3's SentencePiece vocabulary is padded with ``[PADn]`` to ``vocab_size``, its added
tokens taken as written; Phi-4 ships a byte-level BPE tokenizer.json instead.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from qconv.errors import FormatError, SourceError
from qconv.gguf.metadata import KV, kv_float32, kv_uint32
from qconv.model.config import ModelConfig
from qconv.model.hparams import block_count, rope_parameters
from qconv.model.spec import ArchSpec
from qconv.tokenizer.vocab import VocabRules


def _rope_dims(config: ModelConfig) -> int:
    params = rope_parameters(config)
    n_embd = config.first_int(("hidden_size", "n_embd"))
    n_head = config.first_int(("num_attention_heads", "n_head"), minimum=1)
    if n_embd is None or n_head is None:
        missing = "hidden_size" if n_embd is None else "num_attention_heads"
        raise SourceError(f"{config.label} has no {missing!r}, which llama.cpp needs for Phi-3")
    return int(float(params.get("partial_rotary_factor", 1.0)) * n_embd) // n_head


def _original_context(config: ModelConfig) -> int:
    original = rope_parameters(config).get("original_max_position_embeddings")
    if isinstance(original, bool) or not isinstance(original, int):
        raise FormatError(
            f"{config.label}: Phi-3 needs an integer 'original_max_position_embeddings', "
            f"got {original!r}"
        )
    return original


def _context(config: ModelConfig) -> int:
    return config.first_int(("n_positions", "max_position_embeddings")) or config.integer(
        "max_position_embeddings"
    )


def _phi3_base_keys(name: str, config: ModelConfig) -> list[KV]:
    """Phi3MiniModel.set_gguf_parameters up to general.file_type, in its order."""
    c = config
    params = rope_parameters(c)
    theta = params.get("full_attention", params).get("rope_theta")
    if isinstance(theta, bool) or not isinstance(theta, (int, float)):
        raise FormatError(f"{c.label}: 'rope_theta' must be a number, got {theta!r}")
    return [
        kv_uint32(f"{name}.context_length", _context(c)),
        kv_uint32(f"{name}.rope.scaling.original_context_length", _original_context(c)),
        kv_uint32(f"{name}.embedding_length", c.integer("hidden_size")),
        kv_uint32(f"{name}.feed_forward_length", c.integer("intermediate_size")),
        kv_uint32(f"{name}.block_count", block_count(c)),
        kv_uint32(f"{name}.attention.head_count", c.integer("num_attention_heads")),
        kv_uint32(f"{name}.attention.head_count_kv", c.integer("num_key_value_heads")),
        kv_float32(f"{name}.attention.layer_norm_rms_epsilon", c.number("rms_norm_eps")),
        kv_uint32(f"{name}.rope.dimension_count", _rope_dims(c)),
        kv_float32(f"{name}.rope.freq_base", float(theta)),
    ]


def _phi3_keys(spec: ArchSpec, config: ModelConfig) -> list[KV]:
    # A zero window tells llama.cpp the model has none (Phi-4), unlike Phi-3's 2047.
    window = config.optional_int("sliding_window") or 0
    return [kv_uint32(f"{spec.name}.attention.sliding_window", window)]


def _long_factors(config: ModelConfig) -> tuple[list[Any], list[Any], float] | None:
    """(long, short, attn_factor) of a LongRoPE config, None without ``long_factor``."""
    params = rope_parameters(config)
    long_factors, short_factors = params.get("long_factor"), params.get("short_factor")
    if not long_factors:
        return None
    label = f"{config.label}: rope_scaling"
    original = _original_context(config)
    scale = _context(config) / original
    rope_type = str(params.get("rope_type", "")).lower()
    if rope_type in ("su", "longrope"):
        attn = math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1.0 else 1.0
    elif rope_type == "yarn":
        attn = 0.1 * math.log(scale) + 1.0 if scale > 1.0 else 1.0
    else:
        raise FormatError(f"{label} 'type' is {rope_type!r}; Phi-3 supports longrope and yarn")
    half = _rope_dims(config) / 2
    if not isinstance(long_factors, list) or not isinstance(short_factors, list):
        raise FormatError(f"{label} needs both 'long_factor' and 'short_factor' lists")
    if len(long_factors) != len(short_factors) or len(long_factors) != half:
        raise FormatError(
            f"{label}: 'long_factor' and 'short_factor' must each hold {half:g} numbers "
            f"(half the rope dimensions), got {len(long_factors)} and {len(short_factors)}"
        )
    return long_factors, short_factors, attn


def _rope_factor_tensors(config: ModelConfig) -> list[tuple[str, npt.NDArray[np.float32]]]:
    """LongRoPE factors as rope_factors_long / rope_factors_short tensors (F32)"""
    found = _long_factors(config)
    if found is None:
        return []
    long_factors, short_factors, _ = found
    try:
        return [
            ("rope_factors_long.weight", np.array(long_factors, dtype=np.float32)),
            ("rope_factors_short.weight", np.array(short_factors, dtype=np.float32)),
        ]
    except (TypeError, ValueError) as e:
        raise FormatError(f"{config.label}: rope_scaling factors must be numbers ({e})") from e


def _attn_factor_key(spec: ArchSpec, config: ModelConfig) -> list[KV]:
    found = _long_factors(config)
    return [] if found is None else [kv_float32(f"{spec.name}.rope.scaling.attn_factor", found[2])]


def _derive_phi3(values: dict[str, Any]) -> None:
    """Phi3Config: KV heads default to the query heads; rope_scaling type su/yarn is renamed
    longrope (_rope_scaling_adjustment)."""
    if values.get("num_key_value_heads") is None and values.get("num_attention_heads"):
        values["num_key_value_heads"] = values["num_attention_heads"]
    scaling = values.get("rope_scaling")
    if isinstance(scaling, dict) and scaling.get("type") in ("su", "yarn"):
        values["rope_scaling"] = {**scaling, "type": "longrope"}


SPEC = ArchSpec(
    name="phi3",
    hf_architectures=("Phi3ForCausalLM",),
    model_types=("phi3",),
    layer_tensors={
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
        "self_attn.qkv_proj": "attn_qkv",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    },
    # transformers.Phi3Config defaults, which the converter sees through AutoConfig.
    defaults={
        "vocab_size": 32064,
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "max_position_embeddings": 4096,
        "original_max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "partial_rotary_factor": 1.0,
        "tie_word_embeddings": False,
    },
    derive=_derive_phi3,
    base_keys=_phi3_base_keys,
    family_keys=_phi3_keys,
    extra_tensors=_rope_factor_tensors,
    extra_keys=_attn_factor_key,
    # Phi3MiniModel.set_vocab: tokenizer.model unless tokenizer_config.json says GPT2Tokenizer.
    vocab=VocabRules(added_verbatim=True, spm_required=True, bpe_classes=("GPT2Tokenizer",)),
)
