"""Gemma 3: the `gemma3` GGUF architecture (conversion/gemma.py:125-181).

As Gemma 2 (every ``*norm.weight`` + 1, four norms per layer, tied output, SentencePiece without
the space prefix, sliding-window layers), plus per-head q/k norms, a separate rope base for the
sliding layers (``rope_local_base_freq`` -> ``rope.freq_base_swa``), no attention softcapping, and
the embedding trimmed to the tokenizer's real vocabulary. ``Gemma3ForConditionalGeneration``
converts as its text model: the engine drops ``language_model.`` from names and leaves the vision
tower and projector out, with one warning.
"""

from __future__ import annotations

from typing import Any

from qconv.gguf.metadata import KV, kv_float32, kv_uint32
from qconv.model.config import ModelConfig
from qconv.model.families.gemma2 import MLP, NORM_KINDS, NORMS, PLUS_ONE
from qconv.model.hparams import rope_parameters
from qconv.model.spec import ATTENTION_TENSORS, ArchSpec
from qconv.tokenizer.vocab import VocabRules


def _gemma3_keys(spec: ArchSpec, config: ModelConfig) -> list[KV]:
    """Gemma3Model.set_gguf_parameters after super(): keys TextModel wrote are rewritten in place
    (same values), the softcap and sliding window are new."""
    name, c = spec.name, config
    head_dim = c.integer("head_dim", 256, minimum=1)
    params = rope_parameters(c)
    rope_theta = params.get("full_attention", params).get("rope_theta", 1_000_000.0)
    kvs = [
        kv_uint32(f"{name}.context_length", c.integer("max_position_embeddings", 131072)),
        kv_uint32(f"{name}.attention.head_count", c.integer("num_attention_heads", 8)),
        kv_float32(f"{name}.attention.layer_norm_rms_epsilon", c.number("rms_norm_eps", 1e-6)),
        kv_uint32(f"{name}.attention.key_length", head_dim),
        kv_uint32(f"{name}.attention.value_length", head_dim),
        kv_float32(f"{name}.rope.freq_base", float(rope_theta)),
    ]
    # `if (final_logit_softcap := ...)`: absent, null or 0 writes nothing.
    if softcap := c.optional_float("final_logit_softcapping"):
        kvs.append(kv_float32(f"{name}.final_logit_softcapping", softcap))
    # Old configs say sliding_window_pattern 1 for "every layer global": no window then.
    if c.values.get("sliding_window_pattern") != 1:
        kvs.append(kv_uint32(f"{name}.attention.sliding_window", c.integer("sliding_window")))
    kvs.append(kv_uint32(f"{name}.attention.head_count_kv", c.integer("num_key_value_heads", 4)))
    return kvs


def _derive_gemma3(values: dict[str, Any]) -> None:
    """Gemma3TextConfig halves the window of bidirectional (embedding) models, in AutoConfig."""
    window = values.get("sliding_window")
    if values.get("use_bidirectional_attention") is True and isinstance(window, int):
        values["sliding_window"] = window // 2 + 1


SPEC = ArchSpec(
    name="gemma3",
    hf_architectures=("Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"),
    model_types=("gemma3",),
    layer_tensors={
        **NORMS,
        **ATTENTION_TENSORS,
        **MLP,
        "self_attn.q_norm": "attn_q_norm",
        "self_attn.k_norm": "attn_k_norm",
    },
    transforms={
        "token_embd": ("trim_vocab",),
        **{kind: PLUS_ONE for kind in (*NORM_KINDS, "attn_q_norm", "attn_k_norm")},
    },
    # transformers.Gemma3TextConfig defaults (the text_config of Gemma3Config).
    defaults={
        "vocab_size": 262208,
        "hidden_size": 2304,
        "intermediate_size": 9216,
        "num_hidden_layers": 26,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1_000_000.0,
        "rope_local_base_freq": 10000.0,
        "sliding_window": 4096,
        "tie_word_embeddings": True,
    },
    derive=_derive_gemma3,
    family_keys=_gemma3_keys,
    vocab=VocabRules(space_prefix=False),
)
