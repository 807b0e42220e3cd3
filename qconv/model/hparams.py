"""Hyperparameter metadata, in the order and types llama.cpp's converter writes.

Mirrors ``TextModel.__init__`` (rope parameters) and ``TextModel.set_gguf_parameters``
(conversion/base.py:1352-1546) key for key, reading the typed :class:`ModelConfig`, so a qconv
header can be byte-identical to llama.cpp's. A family's own keys (its ``set_gguf_parameters`` after
``super()``) come from the spec's ``family_keys`` and follow ``general.file_type``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from qconv.errors import FormatError
from qconv.gguf.constants import GGML_QNT_VERSION
from qconv.gguf.metadata import KV, kv_bool, kv_float32, kv_string, kv_uint32
from qconv.model.config import ModelConfig
from qconv.model.spec import ArchSpec

LAYER_KEYS = ("n_layers", "num_hidden_layers", "n_layer", "num_layers")
CONTEXT_KEYS = (
    "max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length",
    "model_max_length",
)  # fmt: skip
FF_KEYS = (
    "prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner",
    "hidden_dim",
)  # fmt: skip
_ROPE_THETA_KEYS = (
    "global_rope_theta", "rope_global_theta", "rope_theta_global", "rope_theta", "rotary_emb_base",
)  # fmt: skip
_LOCAL_ROPE_THETA_KEYS = (
    "local_rope_theta", "rope_local_theta", "rope_theta_local", "swa_rope_theta",
    "rope_local_base_freq",
)  # fmt: skip
_EXPERT_COUNT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts")
_EXPERT_USED_KEYS = ("num_experts_per_tok", "num_experts_per_token", "top_k_experts")
_SCORE_FUNC_KEYS = (
    "score_function", "scoring_func", "score_func", "moe_router_activation",
    "moe_router_activation_func", "expert_selection_fn",
)  # fmt: skip
_GATING_FUNCS = {"softmax": 1, "sigmoid": 2, "sqrtsoftplus": 3}  # llama.cpp ExpertGatingFuncType


def block_count(config: ModelConfig) -> int:
    """The layer count (the converter's ``find_hparam`` over its four spellings).

    Raises:
        SourceError: none of the keys is present. FormatError: not a non-negative integer.
    """
    n_layers = config.first_int(LAYER_KEYS)
    if n_layers is None:
        return config.integer("num_hidden_layers")  # raises, naming the usual key
    return n_layers


def rope_parameters(config: ModelConfig) -> dict[str, Any]:
    """``rope_parameters`` / ``rope_scaling`` with the global keys mirrored in, as
    ``TextModel.__init__`` builds ``self.rope_parameters``."""
    key = "rope_parameters" if "rope_parameters" in config else "rope_scaling"
    params = dict(config.optional_mapping(key) or {})
    if "full_attention" not in params and "sliding_attention" not in params:
        if (local := config.first_float(_LOCAL_ROPE_THETA_KEYS)) is not None:
            params["sliding_attention"] = {"rope_theta": local}
        theta = config.first_float(_ROPE_THETA_KEYS)
        if "rope_theta" not in params and theta is not None:
            params["rope_theta"] = theta
        if "rope_type" not in params and params.get("type") is not None:
            params["rope_type"] = params["type"]
        factor = config.first_float(("partial_rotary_factor", "rope_pct", "rope_percent"))
        if "partial_rotary_factor" not in params and factor is not None:
            params["partial_rotary_factor"] = factor
        original = config.optional_int("original_max_position_embeddings")
        if "original_max_position_embeddings" not in params and original is not None:
            params["original_max_position_embeddings"] = original
    return params


def _number(config: ModelConfig, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FormatError(f"{config.label}: {where} must be a finite number, got {value!r}")
    return float(value)


def _rope_scaling(prefix: str, config: ModelConfig, params: dict[str, Any]) -> list[KV]:
    rope_type = params.get("rope_type")
    if rope_type is None:
        return []
    factor = params.get("factor")
    scaling = f"{prefix}.rope.scaling"
    if rope_type == "linear" and factor is not None:
        return [
            kv_string(f"{scaling}.type", "linear"),
            kv_float32(f"{scaling}.factor", _number(config, "rope_scaling.factor", factor)),
        ]
    if rope_type == "yarn" and factor is not None:
        original = params.get("original_max_position_embeddings")
        if isinstance(original, bool) or not isinstance(original, int):
            raise FormatError(
                f"{config.label}: yarn rope scaling needs an integer "
                "'original_max_position_embeddings' in rope_scaling"
            )
        kvs = [
            kv_string(f"{scaling}.type", "yarn"),
            kv_float32(f"{scaling}.factor", _number(config, "rope_scaling.factor", factor)),
            kv_uint32(f"{scaling}.original_context_length", original),
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
                kvs.append(kv_float32(f"{scaling}.{name}", _number(config, key, value)))
        return kvs
    if rope_type in ("su", "longrope"):
        return [kv_string(f"{scaling}.type", "longrope")]
    return []


def base_keys(name: str, config: ModelConfig) -> list[KV]:
    """``TextModel.set_gguf_parameters`` up to and excluding general.file_type."""
    c = config
    kvs = [kv_uint32(f"{name}.block_count", block_count(c))]
    sizes = (
        ("context_length", CONTEXT_KEYS),
        ("embedding_length", ("hidden_size", "n_embd", "dim")),
        ("feed_forward_length", FF_KEYS),
        ("attention.head_count", ("num_attention_heads", "n_head", "n_heads")),
        ("attention.head_count_kv", ("num_key_value_heads", "n_kv_heads")),
    )
    for suffix, keys in sizes:
        if (value := c.first_int(keys)) is not None:
            kvs.append(kv_uint32(f"{name}.{suffix}", value))
    if c.boolean("is_causal", True) is False:
        kvs.append(kv_bool(f"{name}.attention.causal", False))
    params = rope_parameters(c)
    rope = params.get("full_attention", params)
    if not isinstance(rope, dict):
        raise FormatError(f"{c.label}: rope parameters 'full_attention' must be an object")
    kvs += _rope_scaling(name, c, rope)
    if (theta := rope.get("rope_theta")) is not None:
        kvs.append(kv_float32(f"{name}.rope.freq_base", _number(c, "rope_theta", theta)))
    sliding = params.get("sliding_attention")
    if isinstance(sliding, dict) and (local := sliding.get("rope_theta")) is not None:
        kvs.append(kv_float32(f"{name}.rope.freq_base_swa", _number(c, "local rope_theta", local)))
    if (eps := c.first_float(("rms_norm_eps", "norm_eps"))) is not None:
        kvs.append(kv_float32(f"{name}.attention.layer_norm_rms_epsilon", eps))
    norm_eps_keys = ("layer_norm_eps", "layer_norm_epsilon", "norm_epsilon")
    if (eps := c.first_float(norm_eps_keys)) is not None:
        kvs.append(kv_float32(f"{name}.attention.layer_norm_epsilon", eps))
    if (n_experts := c.first_int(_EXPERT_COUNT_KEYS)) is not None:
        kvs.append(kv_uint32(f"{name}.expert_count", n_experts))
    if (n_used := c.first_int(_EXPERT_USED_KEYS)) is not None:
        kvs.append(kv_uint32(f"{name}.expert_used_count", n_used))
    if (n_group := c.optional_int("n_group")) is not None:
        kvs.append(kv_uint32(f"{name}.expert_group_count", n_group))
    if (n_group_used := c.optional_int("topk_group")) is not None:
        kvs.append(kv_uint32(f"{name}.expert_group_used_count", n_group_used))
    if (key := c.first_key(_SCORE_FUNC_KEYS)) is not None:
        func = c.optional_str(key)
        if func not in _GATING_FUNCS:
            raise FormatError(f"{c.label}: {key!r} is {func!r}; llama.cpp supports softmax, "
                              "sigmoid and sqrtsoftplus")  # fmt: skip
        kvs.append(kv_uint32(f"{name}.expert_gating_func", _GATING_FUNCS[func]))
    if (head_dim := c.optional_int("head_dim", minimum=1)) is not None:
        kvs += [
            kv_uint32(f"{name}.attention.key_length", head_dim),
            kv_uint32(f"{name}.attention.value_length", head_dim),
        ]
    return kvs


def rope_dimension(config: ModelConfig) -> int:
    head_dim = config.optional_int("head_dim", minimum=1)
    if head_dim is not None:
        return head_dim
    heads = config.integer("num_attention_heads", minimum=1)
    return config.integer("hidden_size", minimum=1) // heads


def hyperparameters(
    spec: ArchSpec | None, name: str, config: ModelConfig, file_type: int
) -> list[KV]:
    """All architecture KVs plus general.file_type / general.quantization_version, in order.

    Raises:
        SourceError / FormatError: config.json lacks a required key or holds a wrong value.
    """
    own_base = spec.base_keys if spec is not None else None
    kvs = (own_base or base_keys)(name, config)
    kvs.append(kv_uint32("general.file_type", file_type))
    for key in spec.trailing_keys if spec else ():
        if key == "vocab_size":
            kvs.append(kv_uint32(f"{name}.vocab_size", config.integer("vocab_size", minimum=1)))
        elif key == "rope.dimension_count":
            kvs.append(kv_uint32(f"{name}.rope.dimension_count", rope_dimension(config)))
    if spec is not None and spec.family_keys is not None:
        index = {kv.key: i for i, kv in enumerate(kvs)}
        for kv in spec.family_keys(spec, config):
            if kv.key in index:  # gguf-py overwrites a duplicate key in place
                kvs[index[kv.key]] = kv
            else:
                index[kv.key] = len(kvs)
                kvs.append(kv)
    kvs.append(kv_uint32("general.quantization_version", GGML_QNT_VERSION))
    return kvs


def llama3_rope_factors(config: ModelConfig, params: dict[str, Any]) -> npt.NDArray[np.float32]:
    """Per-frequency scale factors for Llama 3 rope scaling, computed in float32 like the converter.

    The converter evaluates this with float32 torch tensors, so every step here stays float32 to
    give the same bits (``np.float32`` scalars throughout).
    """
    f32 = np.float32
    base = f32(_number(config, "rope_theta", params.get("rope_theta", 10000.0)))
    dim = rope_dimension(config)
    exponents = np.arange(0, dim, 2, dtype=np.float32) / f32(dim)
    freqs = f32(1.0) / np.power(base, exponents, dtype=np.float32)
    factor = f32(_number(config, "rope_scaling.factor", params.get("factor", 8.0)))
    low = f32(_number(config, "low_freq_factor", params.get("low_freq_factor", 1.0)))
    high = f32(_number(config, "high_freq_factor", params.get("high_freq_factor", 4.0)))
    old_ctx = f32(
        _number(config, "original_max_position_embeddings",
                params.get("original_max_position_embeddings", 8192))
    )  # fmt: skip
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
