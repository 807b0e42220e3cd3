"""Per-tensor decisions, made before a byte is written: which ggml type each tensor gets, and why.

Pure functions of names, shapes and the requested target. ``qconv convert --dry-run`` prints this
plan; the writer takes every offset from it. Falling back to another type is a plan decision with a
recorded reason, never an exception caught inside the write loop.

Two sets of rules, matching the two llama.cpp tools a user would otherwise run:

* float targets (f32, f16, bf16) and q8_0 follow ``convert_hf_to_gguf.py``: 1-D tensors, norms and
  biases stay F32, everything else gets the target type, in the converter's tensor order;
* the other quantized targets (q4_0 … q6_k, and the mixtures such as q4_k_m) follow
  ``convert_hf_to_gguf.py --outtype bf16`` then ``llama-quantize`` (qconv.plan.mixture): per-tensor
  mixture rules, fallbacks for rows that do not fit a block, and llama-quantize's tensor order.
  For q8_0 both tools choose the same types, so the converter's order is kept, unless an
  importance matrix is given: then the file is llama-quantize's (its order, its imatrix keys).

With an importance matrix (qconv.imatrix), every tensor llama-quantize would quantize (its type
differs from the intermediate file's) carries its importance vector, one row per expert, looked
up by GGUF name and checked here, before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from qconv import quant
from qconv.errors import QuantizationError, UsageError
from qconv.gguf.constants import QUANT_SIZES, GGMLType, LlamaFileType, tensor_nbytes
from qconv.imatrix import Imatrix, importance_for
from qconv.plan.mixture import (
    FTYPE_NAMES,
    PURE_ALIASES,
    REFUSED_FTYPES,
    MixtureTensor,
    TypeChoice,
    choose_types,
    default_type,
    llama_quantize_order,
    resolve_ftype,
)
from qconv.source import TensorData

__all__ = [
    "F32_KINDS",
    "FLOAT_TARGETS",
    "ModelFacts",
    "Target",
    "TensorPlan",
    "keeps_f32",
    "parse_target",
    "plan_tensors",
    "refuse_fallbacks",
    "target_names",
]


@dataclass(frozen=True, slots=True)
class Target:
    """A ``--type`` value: the file type it writes and the tensor type most tensors get."""

    name: str
    ftype: LlamaFileType
    qtype: GGMLType
    pure: bool = False

    @property
    def quantized(self) -> bool:
        return QUANT_SIZES[self.qtype][0] > 1

    @property
    def llama_quantize_layout(self) -> bool:
        """True when the file is laid out as llama-quantize writes it (sorted tensors, KV order)."""
        return self.quantized and self.qtype != GGMLType.Q8_0


FLOAT_TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("f32", LlamaFileType.ALL_F32, GGMLType.F32),
        Target("f16", LlamaFileType.MOSTLY_F16, GGMLType.F16),
        Target("bf16", LlamaFileType.MOSTLY_BF16, GGMLType.BF16),
    )
}


def target_names() -> list[str]:
    """Every ``--type`` name, floats first."""
    return [*FLOAT_TARGETS, *FTYPE_NAMES, *(f"{alias} (with --pure)" for alias in PURE_ALIASES)]


def parse_target(name: str, *, pure: bool = False) -> Target:
    """Look up a ``--type`` name (case-insensitive).

    Raises:
        UsageError: unknown name (the message lists the known ones), or --pure with a float type.
    """
    key = name.strip().lower()
    if key in FLOAT_TARGETS:
        if pure:
            raise UsageError(f"--pure applies to quantized types, not {key}")
        return FLOAT_TARGETS[key]
    if key not in FTYPE_NAMES and key not in PURE_ALIASES and key not in REFUSED_FTYPES:
        known = ", ".join(target_names())
        raise UsageError(f"unknown --type {name!r}; choose one of: {known}")
    ftype = resolve_ftype(key, pure=pure)
    return Target(key, ftype, default_type(ftype), pure)


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What llama-quantize's rules need to know of the model beyond names and shapes."""

    arch: str = "llama"
    n_layer: int | None = None
    n_expert: int = 0
    n_gqa: int = 1

    def choose_types(
        self,
        tensors: Sequence[MixtureTensor],
        target: Target,
        source_types: Sequence[GGMLType],
        has_imatrix: bool,
    ) -> list[TypeChoice]:
        """llama-quantize's type per tensor for ``target`` on this model (mixture.choose_types)."""
        return choose_types(
            tensors,
            target.ftype,
            arch=self.arch,
            pure=target.pure,
            n_layer=self.n_layer,
            n_expert=self.n_expert,
            n_gqa=self.n_gqa,
            source_types=source_types,
            has_imatrix=has_imatrix,
        )


@dataclass(frozen=True, slots=True)
class TensorPlan:
    """What will be written for one tensor."""

    name: str
    data: TensorData
    qtype: GGMLType
    reason: str
    fallback: bool = False
    # The imatrix's per-column weights, (n_expert, n_cols): row e weighs expert e's rows.
    importance: npt.NDArray[np.float32] | None = field(default=None, compare=False, repr=False)
    # llama-quantize writes each tensor with ggml_n_dims dimensions: trailing ne[] of 1 (leading
    # NumPy dims of 1, e.g. Qwen2-MoE's (1, n_embd) shared-expert gate) are dropped.
    ggml_dims: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def rows_per_matrix(self) -> int:
        """Rows of one 2-D matrix: an expert's slice of a 3-D tensor, else the whole tensor."""
        if len(self.shape) == 3:
            return self.shape[1]
        return tensor_rows(self.shape)

    @property
    def file_shape(self) -> tuple[int, ...]:
        """The shape written in the GGUF tensor info."""
        shape = self.data.shape
        if self.ggml_dims:
            while len(shape) > 1 and shape[0] == 1:
                shape = shape[1:]
        return shape

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.qtype, self.shape)


def tensor_rows(shape: tuple[int, ...]) -> int:
    """Rows of a tensor seen as (rows, cols): the product of every dimension but the last."""
    n = 1
    for dim in shape[:-1]:
        n *= dim
    return n


# GGUF tensor kinds convert_hf_to_gguf.py always writes as F32 (base.py:1094-1118).
F32_KINDS = frozenset({"ffn_gate_inp", "ffn_gate_inp_shexp", "position_embd", "token_types"})


def keeps_f32(name: str, shape: tuple[int, ...]) -> str | None:
    """Why convert_hf_to_gguf stores this tensor as F32 whatever the target, or None."""
    if len(shape) <= 1:
        return "1-D tensor kept F32"
    if name.endswith("_norm.weight"):
        return "norm kept F32"
    parts = name.split(".")
    kind = parts[2] if parts[0] == "blk" and len(parts) > 3 else parts[0]
    if kind in F32_KINDS:
        return f"{kind} kept F32"
    if not name.endswith(".weight"):
        return "bias kept F32"
    return None


def _converter_type(name: str, data: TensorData, outtype: GGMLType) -> tuple[GGMLType, str]:
    """The type convert_hf_to_gguf.py writes for one tensor at a float ``outtype``, and why."""
    kept = keeps_f32(name, data.shape)
    if kept is not None:
        return GGMLType.F32, kept
    return outtype, f"target {outtype.name}"


def plan_tensors(
    tensors: Sequence[tuple[str, TensorData]],
    target: Target,
    *,
    strict: bool = False,
    facts: ModelFacts | None = None,
    imatrix: Imatrix | None = None,
) -> list[TensorPlan]:
    """Choose a type for every ``(gguf_name, data)``; return the plans in the order to write them.

    Raises:
        QuantizationError: with ``strict``, a tensor needed a fallback type; or a type has no
            kernel in qconv.
        UsageError: an importance matrix with a float target.
        SourceError: the importance matrix does not fit the model (qconv.imatrix.importance_for).
    """
    if target.quantized:
        plans = _quantized_plans(tensors, target, facts or ModelFacts(), imatrix)
    elif imatrix is not None:
        raise UsageError(f"--imatrix applies to quantized types, not {target.name}")
    else:
        plans = []
        for name, data in tensors:
            qtype, reason = _converter_type(name, data, target.qtype)
            plans.append(TensorPlan(name, data, qtype, reason))
    if strict:
        refuse_fallbacks(plans)
    return plans


def refuse_fallbacks(plans: Sequence[TensorPlan]) -> None:
    """``--strict``: fail on the first plan whose type is a fallback.

    Raises:
        QuantizationError: naming the tensor and the fallback.
    """
    for plan in plans:
        if plan.fallback:
            raise QuantizationError(
                f"tensor {plan.name!r} {list(plan.shape)}: {plan.reason}; --strict forbids "
                "fallbacks (drop --strict to accept it)"
            )


def _quantized_plans(
    tensors: Sequence[tuple[str, TensorData]],
    target: Target,
    facts: ModelFacts,
    imatrix: Imatrix | None,
) -> list[TensorPlan]:
    # What the intermediate GGUF of the two-step pipeline would hold: bf16 from a bf16 source,
    # f32 otherwise. Tensors llama-quantize does not quantize keep exactly that type.
    intermediate = [
        _converter_type(name, data, GGMLType.BF16 if data.dtype == "BF16" else GGMLType.F32)[0]
        for name, data in tensors
    ]
    choices = facts.choose_types(
        [MixtureTensor(name, data.shape) for name, data in tensors],
        target,
        intermediate,
        has_imatrix=imatrix is not None,
    )
    # llama-quantize writes the file whenever it is the tool that would run.
    file_layout = target.llama_quantize_layout or imatrix is not None
    plans = []
    for (name, data), choice, before in zip(tensors, choices, intermediate, strict=True):
        if not quant.can_quantize(choice.qtype):
            raise QuantizationError(
                f"tensor {name!r}: qconv has no {choice.qtype.name} kernel yet ({choice.reason})"
            )
        importance, reason = None, choice.reason
        # llama-quantize looks an importance vector up only for tensors whose type changes.
        if imatrix is not None and choice.qtype != before:
            importance = importance_for(imatrix, name, data.shape)
            reason += "; imatrix" if importance is not None else "; no imatrix entry"
        plans.append(
            TensorPlan(name, data, choice.qtype, reason, choice.fallback, importance, file_layout)
        )
    if not file_layout:
        return plans
    return [plans[i] for i in llama_quantize_order([plan.name for plan in plans])]
