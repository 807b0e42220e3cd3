"""llama-quantize's per-tensor type choice (Q4_K_M and friends) as a pure function of names, shapes.

A llama.cpp "file type" such as Q4_K_M is not one tensor type but a mixture: attn_v and ffn_down get
more bits in some layers, the output matrix gets Q6_K, norms stay F32, and rows that do not split
into 256-element super-blocks fall back to a 32-block type. ``choose_types`` reproduces those
decisions tensor for tensor, so that a one-step qconv conversion equals convert_hf_to_gguf followed
by llama-quantize. The rules mirror ``src/llama-quant.cpp`` of the vendored llama.cpp:
``tensor_allows_quantization``, ``llama_tensor_get_type``, ``llama_tensor_get_type_impl``,
``tensor_type_fallback``, ``init_quantize_state_counters`` and ``llama_ftype_get_default_type``.
The per-category rules (``llama_tensor_get_type_impl``) live in
qconv.plan.mixture_rules; this module
is the API around them.

An importance matrix (``has_imatrix``) changes two choices for the file types qconv offers:
IQ4_NL/IQ4_XS keep ffn_down in the first eighth of the layers at their own type instead of Q5_K,
and Q4_0/Q5_0 give those layers Q4_1/Q5_1.

Not modelled, because qconv never uses them: --tensor-type / --output-tensor-type /
--token-embedding-type overrides, --leave-output-tensor, layer pruning, and the IQ1-IQ3, TQ and
MXFP4 file types (``resolve_ftype`` refuses them by name, naming --imatrix for those that need one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qconv.errors import QuantizationError, UsageError
from qconv.gguf.constants import QUANT_SIZES, GGMLType, LlamaFileType
from qconv.plan.mixture_rules import (
    ATTN_V_LIKE,
    Category,
    MixtureState,
    get_category,
    layer_of,
    mixture_type,
    use_more_bits,
)

__all__ = [
    "FTYPE_NAMES",
    "PURE_ALIASES",
    "REFUSED_FTYPES",
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
                 "q6_k", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl", "iq4_xs")
}  # fmt: skip

# llama-quantize file types qconv does not write. Those llama-quantize refuses to make without an
# importance matrix (tensor_requires_imatrix: IQ1/IQ2/IQ3_XXS tensors, Q2_K inside Q2_K_S) get a
# refusal that says so, since a user coming from llama.cpp will try them with --imatrix.
NEEDS_IMATRIX = ("iq1_s", "iq1_m", "iq2_xxs", "iq2_xs", "iq2_s", "iq2_m", "iq3_xxs", "q2_k_s")
UNSUPPORTED = ("iq3_xs", "iq3_s", "iq3_m", "tq1_0", "tq2_0", "mxfp4_moe", "nvfp4", "q1_0", "q2_0")
REFUSED_FTYPES = frozenset(NEEDS_IMATRIX + UNSUPPORTED)  # resolve_ftype says why for each

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
    _F.MOSTLY_IQ4_NL: GGMLType.IQ4_NL, _F.MOSTLY_IQ4_XS: GGMLType.IQ4_XS,
}  # fmt: skip

# tensor_type_fallback: the 32-block type a 256-block type falls back to when a row does not split.
_FALLBACKS: dict[GGMLType, GGMLType] = {
    GGMLType.Q2_K: GGMLType.Q4_0, GGMLType.Q3_K: GGMLType.Q4_0, GGMLType.Q4_K: GGMLType.Q5_0,
    GGMLType.Q5_K: GGMLType.Q5_1, GGMLType.Q6_K: GGMLType.Q8_0, GGMLType.IQ4_XS: GGMLType.IQ4_NL,
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
    if key in NEEDS_IMATRIX:
        raise UsageError(
            f"type {name!r} is not supported: llama-quantize makes it only with an importance "
            f"matrix (--imatrix), and qconv has no kernel for it; with --imatrix choose one of: "
            f"{known}"
        )
    if key in UNSUPPORTED:
        raise UsageError(f"type {name!r} is not supported by qconv; choose one of: {known}")
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
    has_imatrix: bool = False,
) -> list[TypeChoice]:
    """The type llama-quantize picks for each tensor, in the input order.

    Counters such as "the i-th attn_v" advance in llama-quantize's sorted order whatever order the
    tensors come in. ``n_layer`` is ``<arch>.block_count`` (inferred from blk.N names when None),
    ``n_expert`` is ``<arch>.expert_count``, ``n_gqa`` is head_count // head_count_kv.
    ``source_types`` are the types convert_hf_to_gguf would have written (F32 assumed when None):
    a tensor llama-quantize does not quantize keeps its source type. ``has_imatrix`` is whether
    llama-quantize was given an importance matrix (with at least one entry).

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
    state = MixtureState(
        ftype=LlamaFileType(ftype),
        arch=arch,
        n_layer=_infer_n_layer(names) if n_layer is None else n_layer,
        n_expert=n_expert,
        n_gqa=n_gqa,
        n_attention_wv=sum(cat in ATTN_V_LIKE for cat in categories),
        # init_quantize_state_counters: tied until a tensor named output.weight exists.
        has_tied_embeddings=Category.OUTPUT not in categories,
        has_imatrix=has_imatrix,
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
    tensor: MixtureTensor, category: Category, start: GGMLType, state: MixtureState, *, pure: bool
) -> TypeChoice:
    """llama_tensor_get_type for one quantizable tensor, advancing ``state``'s counters."""
    if QUANT_SIZES[start][0] == 1:
        # ggml_is_quantized is false for F32/F16/BF16: no mixture rules and no fallback.
        return TypeChoice(start, f"default {start.name}")
    if pure:
        qtype, reason = start, f"pure {start.name}"
    else:
        qtype, reason = mixture_type(state, tensor.name, tensor.shape[-1], category, start)
    final = fallback_type(qtype, tensor.shape[-1])
    if final != qtype:
        block = QUANT_SIZES[qtype][0]
        reason += f"; fallback: row {tensor.shape[-1]} % {block} -> {final.name}"
    return TypeChoice(final, reason, fallback=final != qtype)
