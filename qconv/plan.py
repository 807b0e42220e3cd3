"""Per-tensor decisions, made before a byte is written: which ggml type each tensor gets, and why.

Pure functions of names, shapes and the requested target. ``qconv convert --dry-run`` prints this
plan; the writer takes every offset from it. Falling back to another type is a plan decision with a
recorded reason, never an exception caught inside the write loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qconv.errors import QuantizationError, UsageError
from qconv.format import QUANT_SIZES, GGMLType, LlamaFileType, fits_block, tensor_nbytes
from qconv.source import TensorData

__all__ = ["TARGETS", "Target", "TensorPlan", "parse_target", "plan_tensors"]


@dataclass(frozen=True, slots=True)
class Target:
    """A ``--type`` value: the file type it writes and the tensor type most tensors get."""

    name: str
    ftype: LlamaFileType
    qtype: GGMLType

    @property
    def quantized(self) -> bool:
        return QUANT_SIZES[self.qtype][0] > 1


_FT = LlamaFileType
TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("f32", _FT.ALL_F32, GGMLType.F32),
        Target("f16", _FT.MOSTLY_F16, GGMLType.F16),
        Target("bf16", _FT.MOSTLY_BF16, GGMLType.BF16),
        Target("q8_0", _FT.MOSTLY_Q8_0, GGMLType.Q8_0),
        Target("q4_0", _FT.MOSTLY_Q4_0, GGMLType.Q4_0),
        Target("q4_1", _FT.MOSTLY_Q4_1, GGMLType.Q4_1),
        Target("q5_0", _FT.MOSTLY_Q5_0, GGMLType.Q5_0),
        Target("q5_1", _FT.MOSTLY_Q5_1, GGMLType.Q5_1),
    )
}


def parse_target(name: str) -> Target:
    """Look up a ``--type`` name (case-insensitive).

    Raises:
        UsageError: unknown name; the message lists the known ones.
    """
    try:
        return TARGETS[name.strip().lower()]
    except KeyError:
        known = ", ".join(TARGETS)
        raise UsageError(f"unknown --type {name!r}; choose one of: {known}") from None


@dataclass(frozen=True, slots=True)
class TensorPlan:
    """What will be written for one tensor."""

    name: str
    data: TensorData
    qtype: GGMLType
    reason: str
    fallback: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.qtype, self.shape)


# llama.cpp's tensor_type_fallback: the type tried when a row does not split into the wanted blocks.
FALLBACK: dict[GGMLType, GGMLType] = {
    GGMLType.Q2_K: GGMLType.Q4_0,
    GGMLType.Q3_K: GGMLType.Q4_0,
    GGMLType.Q4_K: GGMLType.Q5_0,
    GGMLType.Q5_K: GGMLType.Q5_1,
    GGMLType.Q6_K: GGMLType.Q8_0,
}


def keeps_f32(name: str, shape: tuple[int, ...]) -> str | None:
    """Why convert_hf_to_gguf stores this tensor as F32 whatever the target, or None."""
    if len(shape) <= 1:
        return "1-D tensor kept F32"
    if name.endswith("_norm.weight"):
        return "norm kept F32"
    if not name.endswith(".weight"):
        return "bias kept F32"
    return None


def fit_type(qtype: GGMLType, n_cols: int) -> tuple[GGMLType, str | None]:
    """``qtype`` if rows of ``n_cols`` fit its blocks, else llama.cpp's fallback, else F16."""
    if fits_block(qtype, n_cols):
        return qtype, None
    block = QUANT_SIZES[qtype][0]
    candidate = FALLBACK.get(qtype)
    if candidate is not None and fits_block(candidate, n_cols):
        chosen = candidate
    else:
        chosen = GGMLType.F16
    return chosen, f"fallback: row length {n_cols} is not a multiple of {block} -> {chosen.name}"


def plan_tensors(
    tensors: Sequence[tuple[str, TensorData]], target: Target, *, strict: bool = False
) -> list[TensorPlan]:
    """Choose a type for every ``(gguf_name, data)``, in the given order.

    Raises:
        QuantizationError: with ``strict``, a tensor needed a fallback type.
    """
    plans = []
    for name, data in tensors:
        kept = keeps_f32(name, data.shape)
        if kept is not None:
            plans.append(TensorPlan(name, data, GGMLType.F32, kept))
            continue
        qtype, why = fit_type(target.qtype, data.shape[-1])
        if why is None:
            plans.append(TensorPlan(name, data, qtype, f"target {qtype.name}"))
            continue
        if strict:
            raise QuantizationError(
                f"tensor {name!r} {list(data.shape)}: {why}; --strict forbids fallbacks "
                "(drop --strict to accept it)"
            )
        plans.append(TensorPlan(name, data, qtype, why, fallback=True))
    return plans
