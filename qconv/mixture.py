"""llama-quantize's per-tensor type choice (Q4_K_M and friends) as a pure function of names, shapes.

A llama.cpp "file type" such as Q4_K_M is not one tensor type but a mixture: attn_v and ffn_down get
more bits in some layers, the output matrix gets Q6_K, norms stay F32, and rows that do not split
into 256-element super-blocks fall back to a 32-block type. ``choose_types`` reproduces those
decisions tensor for tensor, so that a one-step qconv conversion equals convert_hf_to_gguf followed
by llama-quantize. The rules mirror ``src/llama-quant.cpp`` of the vendored llama.cpp:
``tensor_allows_quantization``, ``llama_tensor_get_type``, ``llama_tensor_get_type_impl``,
``tensor_type_fallback``, ``init_quantize_state_counters`` and ``llama_ftype_get_default_type``.

Not modelled, because qconv never uses them: importance matrices (qconv has none, so the
imatrix-only Q4_0/Q5_0 ffn_down bump never fires), --tensor-type / --output-tensor-type /
--token-embedding-type overrides, --leave-output-tensor, layer pruning, and the IQ/TQ/MXFP4 file
types (``LlamaFileType`` does not list them; ``default_type`` rejects anything unknown).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from qconv.errors import QuantizationError, UsageError
from qconv.format import QUANT_SIZES, GGMLType, LlamaFileType

__all__ = [
    "FTYPE_NAMES",
    "PURE_ALIASES",
    "Category",
    "MixtureTensor",
    "TypeChoice",
    "allows_quantization",
    "choose_types",
    "default_type",
    "fallback_type",
    "get_category",
    "layer_of",
    "llama_quantize_order",
    "resolve_ftype",
    "use_more_bits",
]

_F = LlamaFileType

# llama-quantize's CLI names (tools/quantize/quantize.cpp QUANT_OPTIONS), lower-cased.
FTYPE_NAMES: dict[str, LlamaFileType] = {
    name: LlamaFileType[f"MOSTLY_{name.upper()}"]
    for name in ("q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m",
                 "q6_k", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0")
}  # fmt: skip

# llama-quantize treats "Q3_K", "Q4_K" and "Q5_K" as aliases of the _M mixtures, and with --pure
# that ftype means "every quantizable tensor is Q4_K" (general.file_type is still written as
# Q4_K_M, which is what llama-quantize writes too). qconv accepts these names only with pure=True:
# a user typing `--type q4_k` most likely wants the single type, and silently handing them the
# Q4_K_M mixture (as llama-quantize would) is the surprise we avoid.
PURE_ALIASES: dict[str, LlamaFileType] = {
    "q3_k": _F.MOSTLY_Q3_K_M,
    "q4_k": _F.MOSTLY_Q4_K_M,
    "q5_k": _F.MOSTLY_Q5_K_M,
}

# llama_ftype_get_default_type, restricted to the file types LlamaFileType knows.
_DEFAULT_TYPES: dict[LlamaFileType, GGMLType] = {
    _F.ALL_F32: GGMLType.F32, _F.MOSTLY_F16: GGMLType.F16, _F.MOSTLY_BF16: GGMLType.BF16,
    _F.MOSTLY_Q4_0: GGMLType.Q4_0, _F.MOSTLY_Q4_1: GGMLType.Q4_1, _F.MOSTLY_Q5_0: GGMLType.Q5_0,
    _F.MOSTLY_Q5_1: GGMLType.Q5_1, _F.MOSTLY_Q8_0: GGMLType.Q8_0, _F.MOSTLY_Q2_K: GGMLType.Q2_K,
    _F.MOSTLY_Q3_K_S: GGMLType.Q3_K, _F.MOSTLY_Q3_K_M: GGMLType.Q3_K,
    _F.MOSTLY_Q3_K_L: GGMLType.Q3_K,
    _F.MOSTLY_Q4_K_S: GGMLType.Q4_K, _F.MOSTLY_Q4_K_M: GGMLType.Q4_K,
    _F.MOSTLY_Q5_K_S: GGMLType.Q5_K, _F.MOSTLY_Q5_K_M: GGMLType.Q5_K, _F.MOSTLY_Q6_K: GGMLType.Q6_K,
}  # fmt: skip

# tensor_type_fallback: the 32-block type a 256-block type falls back to when a row does not split.
_FALLBACKS: dict[GGMLType, GGMLType] = {
    GGMLType.Q2_K: GGMLType.Q4_0, GGMLType.Q3_K: GGMLType.Q4_0, GGMLType.Q4_K: GGMLType.Q5_0,
    GGMLType.Q5_K: GGMLType.Q5_1, GGMLType.Q6_K: GGMLType.Q8_0,
}  # fmt: skip

# tensor_allows_quantization: why -> substrings; a name containing one is copied as it is.
_KEEP_SUBSTRINGS: dict[str, tuple[str, ...]] = {
    "norm": ("_norm.weight",),
    "expert router": ("ffn_gate_inp.weight", "ffn_gate_tid2eid.weight"),
    "small altup/laurel/per-layer tensor": ("altup", "laurel", "per_layer_model_proj"),
    "conv1d": ("ssm_conv1d", "shortconv.conv.weight"),
    "indexer projection": ("indexer.k_proj.weight", "indexer.q_proj.weight"),
    "rwkv time-mix": tuple(f"time_mix_{part}.weight" for part in (
        "first", "w0", "w1", "w2", "v0", "v1", "v2", "a0", "a1", "a2", "g1", "g2", "decay_w1",
        "decay_w2", "lerp_fused")),
    "relative position bias": ("attn_rel_b.weight",),
    "multimodal": (".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos",
                   ".patch_embd", ".patch_merger"),
    "audio codebook": ("a.rvq.codebook", "mm.a.code_embd"),
}  # fmt: skip
# Compared for equality: LLM_TN(arch)(POS_EMBD / TOKEN_TYPES, "weight") for every arch.
_KEEP_NAMES: dict[str, str] = {
    "position_embd.weight": "position embedding",
    "token_types.weight": "token types",
}
_GLM5_NEXT_KEEP: tuple[str, ...] = (
    "hc_", "indexer.attn_q_b", "indexer.attn_k", "indexer.proj", "indexer_compressor_gate",
    "indexer_compressor_ape", "ssm_f_a.weight", "ssm_f_b.weight", "ssm_g_a.weight",
    "ssm_g_b.weight", "ssm_beta.weight", "attn_kv_a_mqa.weight", "attn_k_b.weight",
    "attn_v_b.weight",
)  # fmt: skip

# sscanf(name, "blk.%d.", &layer): %d skips C whitespace and takes an optional sign; the trailing
# "." need not match for the number to be stored.
_LAYER = re.compile(r"blk\.[ \t\n\v\f\r]*([+-]?[0-9]+)")


@dataclass(frozen=True, slots=True)
class MixtureTensor:
    """A tensor as llama-quantize sees it: GGUF name and NumPy-order shape (ne[0] = shape[-1])."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TypeChoice:
    """The type llama-quantize would store a tensor as, and the rule (or fallback) that decided."""

    qtype: GGMLType
    reason: str
    fallback: bool = False  # the row length forced another type than the rules chose


def resolve_ftype(name: str, *, pure: bool = False) -> LlamaFileType:
    """Map a user's ``--type`` name (case-insensitive) to the llama file type to quantize as.

    Raises:
        UsageError: unknown name, or a bare alias (q3_k/q4_k/q5_k) without ``pure``.
    """
    key = name.lower()
    if key in FTYPE_NAMES:
        return FTYPE_NAMES[key]
    if key in PURE_ALIASES:
        if not pure:
            raise UsageError(
                f"type {name!r} is ambiguous: use {key}_m for llama-quantize's mixture "
                f"or add --pure for {key.upper()} in every quantizable tensor"
            )
        return PURE_ALIASES[key]
    known = ", ".join([*FTYPE_NAMES, *PURE_ALIASES])
    raise UsageError(f"unknown file type {name!r}; choose one of: {known}")


def default_type(ftype: LlamaFileType) -> GGMLType:
    """The tensor type a file type starts every quantizable tensor from.

    Raises:
        UsageError: a file type llama-quantize knows but qconv does not model (IQ*, TQ*, MXFP4).
    """
    try:
        return _DEFAULT_TYPES[LlamaFileType(ftype)]
    except (KeyError, ValueError):
        raise UsageError(f"file type {ftype!r} is not supported for quantization") from None


def layer_of(name: str) -> int | None:
    """The block index llama.cpp parses from a tensor name (``blk.<n>.``), or None."""
    match = _LAYER.match(name)
    return int(match.group(1)) if match else None


def llama_quantize_order(names: Sequence[str]) -> list[int]:
    """Permutation into llama-quantize's tensor order (llama-model-loader.h weight_name_comparer).

    Non-block tensors first (layer -1), then blk.0, blk.1, … numerically; ties byte-wise by name.
    The order matters twice: it is the output file's tensor order, and the mixture counters
    (i_attention_wv, i_ffn_down) advance in it.
    """

    def key(i: int) -> tuple[int, bytes]:
        layer = layer_of(names[i])
        return (-1 if layer is None else layer, names[i].encode())

    return sorted(range(len(names)), key=key)


def _n_dims(shape: tuple[int, ...]) -> int:
    # ggml_n_dims: trailing ne[] of size 1 do not count, so a (1, 4096) tensor is 1-D to ggml.
    ne = shape[::-1]
    for i in range(len(ne) - 1, 0, -1):
        if ne[i] > 1:
            return i + 1
    return 1


def _keep_reason(tensor: MixtureTensor, arch: str) -> str | None:
    """Why tensor_allows_quantization refuses this tensor, or None when it may be quantized."""
    name = tensor.name
    if _n_dims(tensor.shape) < 2:
        return "1-D"
    # C tests name.rfind("weight") == size - 6; for a 5-byte name both sides are npos.
    if not (name.endswith("weight") or len(name.encode()) == 5):
        return "name does not end in 'weight'"
    for why, parts in _KEEP_SUBSTRINGS.items():
        if any(part in name for part in parts):
            return why
    if name in _KEEP_NAMES:
        return _KEEP_NAMES[name]
    if arch == "glm5-next" and any(part in name for part in _GLM5_NEXT_KEEP):
        return "glm5-next small tensor"
    return None


def allows_quantization(tensor: MixtureTensor, arch: str = "llama") -> bool:
    """True when llama-quantize would quantize this tensor rather than copy it."""
    return _keep_reason(tensor, arch) is None


def fallback_type(qtype: GGMLType, n_cols: int) -> GGMLType:
    """tensor_type_fallback: the type actually used for rows of ``n_cols`` when ``qtype`` is wanted.

    A 256-block K-quant becomes a 32-block legacy type; when even that does not split the row, F16.

    Raises:
        QuantizationError: a 256-block type with no defined fallback (IQ*/TQ* are not modelled).
    """
    block = QUANT_SIZES[qtype][0]
    if n_cols % block == 0:
        return qtype
    if qtype in _FALLBACKS:
        wanted = _FALLBACKS[qtype]
    elif block <= 32:
        wanted = qtype
    else:
        raise QuantizationError(f"no fallback is defined for {qtype.name} with {n_cols} columns")
    return wanted if n_cols % QUANT_SIZES[wanted][0] == 0 else GGMLType.F16


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
_ATTN_V_LIKE = frozenset({Category.ATTN_V, Category.ATTN_QKV, Category.ATTN_KV_B})
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
class _State:
    """quantize_state_impl: the model facts and running counters the mixture rules read."""

    ftype: LlamaFileType
    arch: str
    n_layer: int
    n_expert: int
    n_gqa: int
    n_attention_wv: int
    has_tied_embeddings: bool
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


def _output_type(state: _State, n_cols: int, start: GGMLType) -> _Rule:
    block = QUANT_SIZES[start][0]
    if state.arch == "falcon":
        return GGMLType.Q8_0, "falcon"
    if n_cols % block:
        return GGMLType.Q8_0, f"row {n_cols} % {block}"
    if start != GGMLType.Q8_0:
        return GGMLType.Q6_K, "always"
    return start, None


def _attn_v_type(state: _State, start: GGMLType) -> _Rule:
    f, i, n = state.ftype, state.i_attention_wv, state.n_attention_wv
    state.i_attention_wv += 1
    rule: _Rule = (start, None)
    if f == _F.MOSTLY_Q2_K:
        rule = (GGMLType.Q4_K if state.n_gqa >= 4 else GGMLType.Q3_K), f"n_gqa {state.n_gqa}"
    elif f == _F.MOSTLY_Q3_K_M:
        rule = (GGMLType.Q5_K, f"#{i} < 2") if i < 2 else (GGMLType.Q4_K, f"#{i} >= 2")
    elif f == _F.MOSTLY_Q3_K_L:
        rule = GGMLType.Q5_K, "Q3_K_L"
    elif f in (_F.MOSTLY_Q4_K_M, _F.MOSTLY_Q5_K_M) and use_more_bits(i, n):
        rule = GGMLType.Q6_K, f"use_more_bits(#{i} of {n})"
    elif f == _F.MOSTLY_Q4_K_S and i < 4:
        rule = GGMLType.Q5_K, f"#{i} < 4"
    if state.is_70b and rule[0] in (GGMLType.Q3_K, GGMLType.Q4_K):
        rule = GGMLType.Q5_K, "70B model"
    if state.n_expert == 8:
        rule = GGMLType.Q8_0, "8 experts"
    return rule


def _ffn_down_type(state: _State, name: str, start: GGMLType) -> _Rule:
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
    if f in (_F.MOSTLY_Q4_K_M, _F.MOSTLY_Q5_K_M) and more:
        return GGMLType.Q6_K, f"use_more_bits({where})"
    if f == _F.MOSTLY_Q4_K_S and not falcon and i < n // 8:
        return GGMLType.Q5_K, f"{where} < n/8"
    return start, None


def _attn_output_type(state: _State, start: GGMLType) -> _Rule:
    f = state.ftype
    if state.arch == "falcon":
        return (GGMLType.Q4_K, "falcon Q3_K_L") if f == _F.MOSTLY_Q3_K_L else (start, None)
    if state.n_expert == 8:
        bumped = (_F.MOSTLY_Q2_K, _F.MOSTLY_Q3_K_S, _F.MOSTLY_Q3_K_M, _F.MOSTLY_Q4_K_S,
                  _F.MOSTLY_Q4_K_M)  # fmt: skip
        return (GGMLType.Q5_K, "8 experts") if f in bumped else (start, None)
    bump = {_F.MOSTLY_Q2_K: GGMLType.Q3_K, _F.MOSTLY_Q3_K_M: GGMLType.Q4_K,
            _F.MOSTLY_Q3_K_L: GGMLType.Q5_K}  # fmt: skip
    return (bump[f], f.name.removeprefix("MOSTLY_")) if f in bump else (start, None)


def _mixture_type(
    state: _State, name: str, n_cols: int, category: Category, start: GGMLType
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
    elif category in _ATTN_V_LIKE:
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


def _infer_n_layer(names: Sequence[str]) -> int:
    layers = [layer for layer in map(layer_of, names) if layer is not None]
    return max(layers) + 1 if layers else 0


def choose_types(
    tensors: Sequence[MixtureTensor],
    ftype: LlamaFileType,
    *,
    arch: str = "llama",
    pure: bool = False,
    n_layer: int | None = None,
    n_expert: int = 0,
    n_gqa: int = 1,
    source_types: Sequence[GGMLType] | None = None,
) -> list[TypeChoice]:
    """The type llama-quantize picks for each tensor, in the input order.

    Counters such as "the i-th attn_v" advance in llama-quantize's sorted order whatever order the
    tensors come in. ``n_layer`` is ``<arch>.block_count`` (inferred from blk.N names when None),
    ``n_expert`` is ``<arch>.expert_count``, ``n_gqa`` is head_count // head_count_kv.
    ``source_types`` are the types convert_hf_to_gguf would have written (F32 assumed when None):
    a tensor llama-quantize does not quantize keeps its source type.

    Raises:
        UsageError: unsupported file type or mismatched ``source_types`` length.
        QuantizationError: a MoE tensor whose layer llama-quantize cannot parse.

    Example:
        >>> t = MixtureTensor("blk.0.attn_v.weight", (256, 4096))
        >>> choose_types([t], LlamaFileType.MOSTLY_Q4_K_M, n_layer=1)[0].qtype.name
        'Q6_K'
    """
    start = default_type(ftype)
    names = [t.name for t in tensors]
    sources = list(source_types) if source_types is not None else [GGMLType.F32] * len(tensors)
    if len(sources) != len(tensors):
        raise UsageError(f"{len(sources)} source types given for {len(tensors)} tensors")
    categories = [get_category(name) for name in names]
    state = _State(
        ftype=LlamaFileType(ftype),
        arch=arch,
        n_layer=_infer_n_layer(names) if n_layer is None else n_layer,
        n_expert=n_expert,
        n_gqa=n_gqa,
        n_attention_wv=sum(cat in _ATTN_V_LIKE for cat in categories),
        # init_quantize_state_counters: tied until a tensor named output.weight exists.
        has_tied_embeddings=Category.OUTPUT not in categories,
    )
    choices: list[TypeChoice | None] = [None] * len(tensors)
    for i in llama_quantize_order(names):
        keep = _keep_reason(tensors[i], arch)
        if keep is not None:
            choices[i] = TypeChoice(sources[i], f"not quantized ({keep}) -> {sources[i].name}")
        else:
            choices[i] = _choose_one(tensors[i], categories[i], start, state, pure=pure)
    return [choice for choice in choices if choice is not None]


def _choose_one(
    tensor: MixtureTensor, category: Category, start: GGMLType, state: _State, *, pure: bool
) -> TypeChoice:
    """llama_tensor_get_type for one quantizable tensor, advancing ``state``'s counters."""
    if QUANT_SIZES[start][0] == 1:
        # ggml_is_quantized is false for F32/F16/BF16: no mixture rules and no fallback.
        return TypeChoice(start, f"default {start.name}")
    if pure:
        qtype, reason = start, f"pure {start.name}"
    else:
        qtype, reason = _mixture_type(state, tensor.name, tensor.shape[-1], category, start)
    final = fallback_type(qtype, tensor.shape[-1])
    if final != qtype:
        block = QUANT_SIZES[qtype][0]
        reason += f"; fallback: row {tensor.shape[-1]} % {block} -> {final.name}"
    return TypeChoice(final, reason, fallback=final != qtype)
