"""ArchSpec: one architecture family described as data.

A family module (qconv/model/families/*.py) is a single :class:`ArchSpec` value: which
config.json ``architectures`` / ``model_type`` select it, the transformers defaults its config
class fills in, how Hugging Face tensor names map to GGUF names, which transforms from
qconv.model.transforms apply to which GGUF tensors, how experts are stacked, and the family's own
hyperparameter keys. Anything no table entry covers is a small named function the spec references.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qconv.tokenizer.vocab import VocabRules

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from qconv.gguf.metadata import KV
    from qconv.model.config import ModelConfig

__all__ = [
    "ATTENTION_TENSORS",
    "BASE_TENSORS",
    "DROPPED_SUFFIXES",
    "GLOBAL_TENSORS",
    "ArchSpec",
    "ExpertSpec",
    "FusedSpec",
    "derive_kv_heads",
    "derive_llama",
]

# HF names outside the layers -> GGUF names (llama.cpp's gguf-py tensor_mapping.py vocabulary).
GLOBAL_TENSORS: Mapping[str, str] = {
    "model.embed_tokens": "token_embd",
    "model.norm": "output_norm",
    "lm_head": "output",
}

# Inside ``model.layers.N.``: HF module path -> GGUF name inside ``blk.N.``.
BASE_TENSORS: Mapping[str, str] = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
ATTENTION_TENSORS: Mapping[str, str] = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
}

# Buffers some checkpoints still carry; llama.cpp recomputes them, its converter drops them.
DROPPED_SUFFIXES = (".rotary_emb.inv_freq", ".attn.masked_bias", ".attn.bias")


@dataclass(frozen=True, slots=True)
class ExpertSpec:
    """Per-expert tensors stacked into one 3-D tensor per layer and projection.

    ``path`` is a regular expression over the HF path inside ``model.layers.N.`` with two groups,
    the expert index and the projection name; ``names`` maps projection -> GGUF name. When a layer
    has all ``n_expert × len(names)`` tensors (the converter's buffer is full), the stacks are
    emitted in ``order``, each in expert-index order (``torch.stack(dim=0)``).
    """

    path: str
    names: Mapping[str, str]
    order: tuple[str, ...]
    count_keys: tuple[str, ...] = ("num_local_experts", "num_experts")


@dataclass(frozen=True, slots=True)
class FusedSpec:
    """A fused HF tensor split into equal parts along its second-to-last axis, in order.

    ``ndim`` (when not 0) is the number of dimensions the converter requires: transformers v5's
    fused expert tensor ``mlp.experts.gate_up_proj`` is (n_expert, 2·n_ff, n_embd).
    """

    path: str  # HF path inside model.layers.N. (without .weight)
    parts: tuple[str, ...]  # GGUF names of the parts, first rows first
    ndim: int = 0


@dataclass(frozen=True, slots=True)
class ArchSpec:
    """One architecture family: everything qconv needs to write a file llama.cpp runs."""

    name: str  # GGUF general.architecture
    hf_architectures: tuple[str, ...]
    model_types: tuple[str, ...]
    layer_tensors: Mapping[str, str]
    global_tensors: Mapping[str, str] = field(default_factory=lambda: dict(GLOBAL_TENSORS))
    # Where the repeated blocks live: ``<layer_prefix>.N.<path>.weight``.
    layer_prefix: str = "model.layers"
    # (regex, replacement) applied to every HF name first, as the class's filter_tensors does
    # (BERT: ``bert.`` prefix dropped, ``.gamma`` / ``.beta`` read as ``.weight`` / ``.bias``).
    name_rewrites: tuple[tuple[str, str], ...] = ()
    # Regexes of (rewritten) HF names the converter drops (poolers, heads, buffers).
    dropped: tuple[str, ...] = ()
    # GGUF tensor kinds (``attn_q``) -> names of transforms (qconv.model.mapping.TRANSFORMS).
    transforms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    experts: ExpertSpec | None = None
    fused: tuple[FusedSpec, ...] = ()
    # transformers config-class defaults, which convert_hf_to_gguf.py sees through AutoConfig.
    defaults: Mapping[str, Any] = field(default_factory=dict)
    # Values transformers derives from others (head_dim = hidden_size // heads for Llama).
    derive: Callable[[dict[str, Any]], None] | None = None
    # The family's own keys, written after general.file_type (its set_gguf_parameters after
    # super()), in order. A key already written keeps its place and takes the new value, as
    # gguf-py's GGUFWriter.add_key_value overwrites a duplicate.
    family_keys: Callable[[ArchSpec, ModelConfig], list[KV]] | None = None
    # The keys before general.file_type when the family's set_gguf_parameters does not call
    # TextModel's (Gemma 2 writes its own, in its own order); None: hparams.base_keys.
    base_keys: Callable[[str, ModelConfig], list[KV]] | None = None
    # Keys of the llama base class written after general.file_type (vocab_size, rope dims).
    trailing_keys: tuple[str, ...] = ()
    # Llama 3 style rope scaling is stored as a rope_freqs tensor instead of metadata.
    llama3_rope: bool = False
    # Tensors the family's generate_extra_tensors computes from config.json (Phi-3's LongRoPE
    # factors), written before all others, and the KVs it sets while doing so, which land right
    # after general.architecture (the converter prepares tensors before any other metadata).
    extra_tensors: Callable[[ModelConfig], list[tuple[str, npt.NDArray[np.float32]]]] | None = None
    extra_keys: Callable[[ArchSpec, ModelConfig], list[KV]] | None = None
    # Architecture name llama-quantize's rules see (general.architecture), when it differs.
    quant_arch: str = ""
    # How the family's set_vocab departs from the common one (Gemma's space prefix, Phi-3's
    # verbatim added tokens, a required tokenizer.model, BPE selected by tokenizer class).
    vocab: VocabRules = field(default_factory=VocabRules)
    # What the family's set_vocab does after the common vocabulary code: given the config, the
    # model folder and the tokenizer.* KVs, the KVs it ends with (for example LlamaModel's
    # add_bos_token = false for 49152-token vocabularies).
    tokenizer_hook: Callable[[ModelConfig, Path, list[KV]], list[KV]] | None = None
    # Pre-tokenizer names as the family's converter writes them, keyed by the name qconv reads
    # from tokenizer.json (GLM-4's regex is Llama 3's, but llama.cpp tokenizes "glm4" without
    # merges and without BOS).
    pre_tokenizers: Mapping[str, str] = field(default_factory=dict)

    @property
    def permutes_qk(self) -> bool:
        return any("permute_qk" in names for names in self.transforms.values())

    def select_names(self) -> tuple[str, ...]:
        return (self.name, *self.hf_architectures, *self.model_types)


def derive_kv_heads(values: dict[str, Any]) -> None:
    """transformers' configs: ``num_key_value_heads`` None means one KV head per query head."""
    if values.get("num_attention_heads") is not None:
        values.setdefault("num_key_value_heads", values["num_attention_heads"])


def derive_llama(values: dict[str, Any]) -> None:
    """LlamaConfig / MistralConfig also derive ``head_dim = hidden_size // num_attention_heads``."""
    derive_kv_heads(values)
    heads, hidden = values.get("num_attention_heads"), values.get("hidden_size")
    if "head_dim" not in values and isinstance(heads, int) and isinstance(hidden, int) and heads:
        values["head_dim"] = hidden // heads
