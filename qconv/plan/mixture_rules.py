"""llama-quantize's per-category mixture rules: which tensors of a file type get more bits.

The half of ``src/llama-quant.cpp`` that decides types by role: ``tensor_get_category``
(``get_category``), ``quantize_state_impl`` and its running counters (``MixtureState``), and
``llama_tensor_get_type_impl`` (``mixture_type``) with one function per category that has rules
(output, attn_v, ffn_down, attn_output). qconv.plan.mixture holds the public API that drives these
(file-type names, tensor_allows_quantization, fallbacks, llama-quantize's tensor order) and
re-exports ``Category``, ``get_category``, ``use_more_bits`` and ``layer_of``; they live here so
this module needs nothing from qconv.plan.mixture and the two do not import each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from qconv.errors import QuantizationError
from qconv.gguf.constants import QUANT_SIZES, GGMLType, LlamaFileType

__all__ = [
    "ATTN_V_LIKE",
    "Category",
    "MixtureState",
    "get_category",
    "layer_of",
    "mixture_type",
    "use_more_bits",
]

_F = LlamaFileType

# sscanf(name, "blk.%d.", &layer): %d skips C whitespace and takes an optional sign; the trailing
# "." need not match for the number to be stored.
_LAYER = re.compile(r"blk\.[ \t\n\v\f\r]*([+-]?[0-9]+)")


def layer_of(name: str) -> int | None:
    """The block index llama.cpp parses from a tensor name (``blk.<n>.``), or None."""
    match = _LAYER.match(name)
    return int(match.group(1)) if match else None


class Category(Enum):
    """tensor_get_category: the broad role a name plays in the mixture rules."""

    TOKEN_EMBD = "token_embd"
    ATTN_QKV = "attn_qkv"
    ATTN_KV_B = "attn_kv_b"
    ATTN_V = "attn_v"
    ATTN_K = "attn_k"
    ATTN_Q = "attn_q"
    ATTN_OUTPUT = "attn_output"
    FFN_UP = "ffn_up"
    FFN_GATE = "ffn_gate"
    FFN_DOWN = "ffn_down"
    OUTPUT = "output"
    OTHER = "other"


# Checked in this order, first hit wins, exactly as tensor_get_category does.
_CATEGORY_SUBSTRINGS: tuple[tuple[str, Category], ...] = (
    ("attn_qkv.weight", Category.ATTN_QKV),
    ("attn_kv_b.weight", Category.ATTN_KV_B),
    ("attn_v.weight", Category.ATTN_V),
    ("attn_k.weight", Category.ATTN_K),
    ("attn_q.weight", Category.ATTN_Q),
    ("attn_output.weight", Category.ATTN_OUTPUT),
    ("ffn_up", Category.FFN_UP),
    ("ffn_gate", Category.FFN_GATE),
    ("ffn_down", Category.FFN_DOWN),
)
# category_is_attn_v: these share the attn_v counter and rules.
ATTN_V_LIKE = frozenset({Category.ATTN_V, Category.ATTN_QKV, Category.ATTN_KV_B})
# glm5-next: llama_tensor_get_type_impl never lets these go below Q8_0.
_GLM5_NEXT_Q8_0 = ("attn_q_a", "attn_q_b", "nextn.eh_proj")
# Architectures whose load_hparams sets LLM_TYPE_70B (only that model type changes a choice).
_SEVENTY_B_LAYERS: dict[str, int] = {"qwen2": 80, "deci": 80, "olmo": 80, "jais2": 68}


def get_category(name: str) -> Category:
    """The category llama-quantize files a tensor name under."""
    if name == "output.weight":
        return Category.OUTPUT
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return Category.TOKEN_EMBD
    return next((cat for part, cat in _CATEGORY_SUBSTRINGS if part in name), Category.OTHER)


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """The first and last eighth of the layers, and every third one in between, get more bits."""
    # C's % keeps the dividend's sign, so a negative difference never gives 2 there.
    offset = i_layer - n_layers // 8
    return (
        i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (offset >= 0 and offset % 3 == 2)
    )


@dataclass(slots=True)
class MixtureState:
    """quantize_state_impl: the model facts and running counters the mixture rules read."""

    ftype: LlamaFileType
    arch: str
    n_layer: int
    n_expert: int
    n_gqa: int
    n_attention_wv: int
    has_tied_embeddings: bool
    has_imatrix: bool = False
    i_attention_wv: int = 0
    i_ffn: dict[Category, int] = field(default_factory=dict)

    @property
    def is_70b(self) -> bool:
        # models/llama.cpp: 80 layers and n_head != n_head_kv (GQA) is 70B, unless 8 experts.
        if self.arch == "llama":
            return self.n_expert != 8 and self.n_layer == 80 and self.n_gqa > 1
        return _SEVENTY_B_LAYERS.get(self.arch) == self.n_layer

    def next_layer(self, category: Category, name: str) -> tuple[int, int]:
        """layer_info: (layer, n_layer) for an ffn tensor; advances that category's counter."""
        counter = self.i_ffn.get(category, 0)
        self.i_ffn[category] = counter + 1
        if self.n_expert <= 1:
            return counter, self.n_layer
        # Expert tensors are not consecutive in MoE files, so the layer comes from the name.
        layer = layer_of(name)
        if layer is None or not 0 <= layer < self.n_layer:
            raise QuantizationError(
                f"tensor {name}: no layer in [0, {self.n_layer}) in its name, which "
                "llama-quantize needs for expert models"
            )
        return layer, self.n_layer


_Rule = tuple[GGMLType, str | None]
_IQ4 = (_F.MOSTLY_IQ4_NL, _F.MOSTLY_IQ4_XS)
_LEGACY_BUMP = {_F.MOSTLY_Q4_0: GGMLType.Q4_1, _F.MOSTLY_Q5_0: GGMLType.Q5_1}


def _output_type(state: MixtureState, n_cols: int, start: GGMLType) -> _Rule:
    block = QUANT_SIZES[start][0]
    if state.arch == "falcon":
        return GGMLType.Q8_0, "falcon"
    if n_cols % block:
        return GGMLType.Q8_0, f"row {n_cols} % {block}"
    if start != GGMLType.Q8_0:
        return GGMLType.Q6_K, "always"
    return start, None


def _attn_v_type(state: MixtureState, start: GGMLType) -> _Rule:
    f, i, n = state.ftype, state.i_attention_wv, state.n_attention_wv
    state.i_attention_wv += 1
    rule: _Rule = (start, None)
    if f == _F.MOSTLY_Q2_K:
        rule = (GGMLType.Q4_K if state.n_gqa >= 4 else GGMLType.Q3_K), f"n_gqa {state.n_gqa}"
    elif f == _F.MOSTLY_Q3_K_M:
        rule = (GGMLType.Q5_K, f"#{i} < 2") if i < 2 else (GGMLType.Q4_K, f"#{i} >= 2")
    elif f == _F.MOSTLY_Q3_K_L:
        rule = GGMLType.Q5_K, "Q3_K_L"
    elif f in _IQ4 and state.n_gqa >= 4:
        rule = GGMLType.Q5_K, f"n_gqa {state.n_gqa} >= 4"
    elif f in (_F.MOSTLY_Q4_K_M, _F.MOSTLY_Q5_K_M) and use_more_bits(i, n):
        rule = GGMLType.Q6_K, f"use_more_bits(#{i} of {n})"
    elif f == _F.MOSTLY_Q4_K_S and i < 4:
        rule = GGMLType.Q5_K, f"#{i} < 4"
    if state.is_70b and rule[0] in (GGMLType.Q3_K, GGMLType.Q4_K):
        rule = GGMLType.Q5_K, "70B model"
    if state.n_expert == 8:
        rule = GGMLType.Q8_0, "8 experts"
    return rule


def _ffn_down_type(state: MixtureState, name: str, start: GGMLType) -> _Rule:
    i, n = state.next_layer(Category.FFN_DOWN, name)
    f, falcon, more = state.ftype, state.arch == "falcon", use_more_bits(i, n)
    where = f"layer {i} of {n}"
    if f == _F.MOSTLY_Q2_K:
        return GGMLType.Q3_K, "Q2_K"
    if f == _F.MOSTLY_Q3_K_M:
        if i < n // 16:
            return GGMLType.Q5_K, f"{where} < n/16"
        return (GGMLType.Q4_K, where) if not falcon or more else (GGMLType.Q3_K, where)
    if f == _F.MOSTLY_Q3_K_L:
        return (GGMLType.Q4_K if falcon else GGMLType.Q5_K), "Q3_K_L"
    if f == _F.MOSTLY_Q4_K_M and falcon:
        if i < n // 16:
            return GGMLType.Q6_K, f"falcon {where} < n/16"
        return (GGMLType.Q5_K if more else GGMLType.Q4_K), f"falcon use_more_bits({where})"
    if f == _F.MOSTLY_Q4_K_M and more:
        return GGMLType.Q6_K, f"use_more_bits({where})"
    if f in _IQ4 and i < n // 8 and not state.has_imatrix:
        return GGMLType.Q5_K, f"{where} < n/8 without imatrix"
    if f == _F.MOSTLY_Q5_K_M and more:
        return GGMLType.Q6_K, f"use_more_bits({where})"
    if f == _F.MOSTLY_Q4_K_S and not falcon and i < n // 8:
        return GGMLType.Q5_K, f"{where} < n/8"
    if f in _LEGACY_BUMP and state.has_imatrix and i < n // 8:
        # llama-quant.cpp guards the first ffn_down layers only when an imatrix is given, so that
        # files made without one stay as they always were.
        return _LEGACY_BUMP[f], f"{where} < n/8 with imatrix"
    return start, None


def _attn_output_type(state: MixtureState, start: GGMLType) -> _Rule:
    f = state.ftype
    if state.arch == "falcon":
        return (GGMLType.Q4_K, "falcon Q3_K_L") if f == _F.MOSTLY_Q3_K_L else (start, None)
    if state.n_expert == 8:
        bumped = (_F.MOSTLY_Q2_K, _F.MOSTLY_Q3_K_S, _F.MOSTLY_Q3_K_M, _F.MOSTLY_Q4_K_S,
                  _F.MOSTLY_Q4_K_M, *_IQ4)  # fmt: skip
        return (GGMLType.Q5_K, "8 experts") if f in bumped else (start, None)
    bump = {_F.MOSTLY_Q2_K: GGMLType.Q3_K, _F.MOSTLY_Q3_K_M: GGMLType.Q4_K,
            _F.MOSTLY_Q3_K_L: GGMLType.Q5_K}  # fmt: skip
    return (bump[f], f.name.removeprefix("MOSTLY_")) if f in bump else (start, None)


def mixture_type(
    state: MixtureState, name: str, n_cols: int, category: Category, start: GGMLType
) -> tuple[GGMLType, str]:
    """llama_tensor_get_type_impl for the file types qconv supports."""
    label = category.value
    rule: _Rule = (start, None)
    if state.arch == "glm5-next" and any(p in name for p in _GLM5_NEXT_Q8_0):
        label, rule = "glm5-next", (GGMLType.Q8_0, "never below Q8_0")
    elif category is Category.OUTPUT or (
        state.has_tied_embeddings and category is Category.TOKEN_EMBD
    ):
        label = "output" if category is Category.OUTPUT else "tied output/token_embd"
        rule = _output_type(state, n_cols, start)
    elif category in ATTN_V_LIKE:
        rule = _attn_v_type(state, start)
    elif category is Category.ATTN_K and state.n_expert == 8:
        rule = GGMLType.Q8_0, "8 experts"
    elif category is Category.FFN_DOWN:
        rule = _ffn_down_type(state, name, start)
    elif category is Category.ATTN_OUTPUT:
        rule = _attn_output_type(state, start)
    elif category in (Category.FFN_GATE, Category.FFN_UP):
        # No choice changes for these file types, but the layer count (and MoE check) still runs.
        state.next_layer(category, name)
    qtype, why = rule
    return qtype, (f"{label}: {why} -> {qtype.name}" if why else f"default {start.name}")
