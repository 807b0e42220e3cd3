"""Hyperparameter metadata from config.json, in the order and types llama.cpp's converter writes.

convert_hf_to_gguf.py (``TextModel.set_gguf_parameters``) reads config.json through transformers,
which fills family defaults (``Family.defaults``) and derives ``head_dim`` for Llama/Mistral. The
keys below follow its order exactly, so a qconv header can be byte-identical to llama.cpp's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from qconv.errors import SourceError
from qconv.gguf.constants import GGML_QNT_VERSION
from qconv.gguf.metadata import KV, kv_float32, kv_string, kv_uint32
from qconv.model.spec import Family

# (GGUF key suffix, config.json keys tried in order) for the plain integer sizes.
_SIZE_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("context_length", ("max_position_embeddings", "n_ctx", "n_positions", "max_length")),
    ("embedding_length", ("hidden_size", "n_embd", "dim")),
    ("feed_forward_length", ("intermediate_size", "n_inner", "hidden_dim")),
    ("attention.head_count", ("num_attention_heads", "n_head", "n_heads")),
    ("attention.head_count_kv", ("num_key_value_heads", "n_kv_heads")),
)
_LAYER_KEYS = ("n_layers", "num_hidden_layers", "n_layer", "num_layers")
# Families whose transformers config derives head_dim = hidden_size // num_attention_heads.
_DERIVED_HEAD_DIM = ("llama", "mistral")


def effective_config(family: Family | None, config: dict[str, Any]) -> dict[str, Any]:
    """config.json as transformers would see it: family defaults under the file's own values."""
    merged = dict(family.defaults) if family else {}
    merged.update({k: v for k, v in config.items() if v is not None})
    if "text_config" in merged and isinstance(merged["text_config"], dict):
        merged.update(merged["text_config"])
    if family is not None:
        heads = merged.get("num_attention_heads")
        merged.setdefault("num_key_value_heads", heads)
        derived = any(t in _DERIVED_HEAD_DIM for t in family.model_types)
        if derived and "head_dim" not in merged and heads and merged.get("hidden_size"):
            merged["head_dim"] = int(merged["hidden_size"]) // int(heads)
    return merged


def rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    """rope_parameters / rope_scaling with the legacy ``type`` key read as ``rope_type``."""
    params = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    if "full_attention" in params and isinstance(params["full_attention"], dict):
        params = dict(params["full_attention"])
    if "rope_type" not in params and "type" in params:
        params["rope_type"] = params["type"]
    return params


def _first(config: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((config[k] for k in keys if config.get(k) is not None), None)


def _rope_scaling(prefix: str, params: dict[str, Any]) -> list[KV]:
    rope_type = str(params.get("rope_type") or "")
    factor = params.get("factor")
    if rope_type == "linear" and factor is not None:
        return [
            kv_string(f"{prefix}.rope.scaling.type", "linear"),
            kv_float32(f"{prefix}.rope.scaling.factor", factor),
        ]
    if rope_type == "yarn" and factor is not None:
        kvs = [
            kv_string(f"{prefix}.rope.scaling.type", "yarn"),
            kv_float32(f"{prefix}.rope.scaling.factor", factor),
            kv_uint32(
                f"{prefix}.rope.scaling.original_context_length",
                params["original_max_position_embeddings"],
            ),
        ]
        optional = (
            ("extrapolation_factor", "yarn_ext_factor"),
            ("attention_factor", "yarn_attn_factor"),
            ("beta_fast", "yarn_beta_fast"),
            ("beta_slow", "yarn_beta_slow"),
        )
        for key, name in optional:
            value = params.get(
                key, params.get("attn_factor") if key == "attention_factor" else None
            )
            if value is not None:
                kvs.append(kv_float32(f"{prefix}.rope.scaling.{name}", value))
        return kvs
    if rope_type in ("su", "longrope"):
        return [kv_string(f"{prefix}.rope.scaling.type", "longrope")]
    return []


def hyperparameters(
    name: str, family: Family | None, config: dict[str, Any], file_type: int
) -> list[KV]:
    """All architecture KVs plus general.file_type / general.quantization_version, in order.

    Raises:
        SourceError: no layer count in config.json.
    """
    c = effective_config(family, config)
    n_layers = _first(c, _LAYER_KEYS)
    if n_layers is None:
        raise SourceError("config.json has no num_hidden_layers (or n_layers): cannot describe it")
    kvs = [kv_uint32(f"{name}.block_count", n_layers)]
    for suffix, keys in _SIZE_KEYS:
        if (value := _first(c, keys)) is not None:
            kvs.append(kv_uint32(f"{name}.{suffix}", value))
    params = {**rope_parameters(c)}
    params.setdefault("rope_theta", c.get("rope_theta"))
    kvs += _rope_scaling(name, params)
    if params.get("rope_theta") is not None:
        kvs.append(kv_float32(f"{name}.rope.freq_base", params["rope_theta"]))
    if (eps := _first(c, ("rms_norm_eps", "norm_eps"))) is not None:
        kvs.append(kv_float32(f"{name}.attention.layer_norm_rms_epsilon", eps))
    if (n_experts := _first(c, ("num_local_experts", "num_experts"))) is not None:
        kvs.append(kv_uint32(f"{name}.expert_count", n_experts))
    if (n_used := _first(c, ("num_experts_per_tok", "num_experts_per_token"))) is not None:
        kvs.append(kv_uint32(f"{name}.expert_used_count", n_used))
    if (head_dim := c.get("head_dim")) is not None:
        kvs += [
            kv_uint32(f"{name}.attention.key_length", head_dim),
            kv_uint32(f"{name}.attention.value_length", head_dim),
        ]
    kvs.append(kv_uint32("general.file_type", file_type))
    for key in family.trailing_keys if family else ():
        if key == "vocab_size":
            kvs.append(kv_uint32(f"{name}.vocab_size", c["vocab_size"]))
        elif key == "rope.dimension_count":
            rope_dim = head_dim or int(c["hidden_size"]) // int(c["num_attention_heads"])
            kvs.append(kv_uint32(f"{name}.rope.dimension_count", rope_dim))
    kvs.append(kv_uint32("general.quantization_version", GGML_QNT_VERSION))
    return kvs


def llama3_rope_factors(
    family: Family, config: dict[str, Any], params: dict[str, Any]
) -> npt.NDArray[np.float32]:
    """Per-frequency scale factors for Llama 3 rope scaling, computed in float32 like the converter.

    The converter evaluates this with float32 torch tensors, so every step here stays float32 to
    give the same bits (``np.float32`` scalars throughout).
    """
    c = effective_config(family, config)
    f32 = np.float32
    base = f32(params.get("rope_theta", c.get("rope_theta", 10000.0)))
    dim = int(c.get("head_dim") or int(c["hidden_size"]) // int(c["num_attention_heads"]))
    exponents = np.arange(0, dim, 2, dtype=np.float32) / f32(dim)
    freqs = f32(1.0) / np.power(base, exponents, dtype=np.float32)
    factor = f32(params.get("factor", 8.0))
    low = f32(params.get("low_freq_factor", 1.0))
    high = f32(params.get("high_freq_factor", 4.0))
    old_ctx = f32(params.get("original_max_position_embeddings", 8192))
    low_wavelen, high_wavelen = float(old_ctx / low), float(old_ctx / high)
    factors = []
    for freq in freqs:
        wavelen = f32(2 * math.pi) / freq
        if wavelen < high_wavelen:
            factors.append(f32(1.0))
        elif wavelen > low_wavelen:
            factors.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            factors.append(f32(1.0) / ((f32(1.0) - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)
