"""Per-tensor planning: F32 keeps, fallbacks with reasons, --strict, and target names."""

from __future__ import annotations

import numpy as np
import pytest

from qconv.errors import QuantizationError, UsageError
from qconv.format import GGMLType
from qconv.plan import fit_type, keeps_f32, parse_target, plan_tensors
from qconv.source import GeneratedTensor


def tensor(name: str, *shape: int) -> tuple[str, GeneratedTensor]:
    return name, GeneratedTensor(name, np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize(
    ("name", "shape", "kept"),
    [
        ("blk.0.attn_norm.weight", (64,), True),
        ("blk.0.attn_q.bias", (64,), True),
        ("blk.0.q_norm.weight", (1, 64), True),
        ("x.bias", (4, 64), True),
        ("blk.0.attn_q.weight", (64, 64), False),
    ],
)
def test_norms_biases_and_vectors_stay_f32(name: str, shape: tuple[int, ...], kept: bool) -> None:
    assert (keeps_f32(name, shape) is not None) == kept


@pytest.mark.parametrize(
    ("qtype", "n_cols", "chosen"),
    [
        (GGMLType.Q4_0, 64, GGMLType.Q4_0),
        (GGMLType.Q4_0, 100, GGMLType.F16),
        (GGMLType.Q4_K, 576, GGMLType.Q5_0),
        (GGMLType.Q5_K, 576, GGMLType.Q5_1),
        (GGMLType.Q6_K, 576, GGMLType.Q8_0),
        (GGMLType.Q2_K, 576, GGMLType.Q4_0),
        (GGMLType.Q6_K, 100, GGMLType.F16),
    ],
)
def test_fallbacks_follow_llama_cpp(qtype: GGMLType, n_cols: int, chosen: GGMLType) -> None:
    result, why = fit_type(qtype, n_cols)
    assert result == chosen
    assert (why is None) == (qtype == chosen)


def test_plan_records_fallback_reasons_and_strict_refuses_them() -> None:
    tensors = [tensor("a.weight", 4, 64), tensor("b.weight", 4, 100), tensor("n.weight", 64)]
    plans = plan_tensors(tensors, parse_target("q8_0"))
    assert [(p.qtype, p.fallback) for p in plans] == [
        (GGMLType.Q8_0, False),
        (GGMLType.F16, True),
        (GGMLType.F32, False),
    ]
    assert plans[1].nbytes == 4 * 100 * 2
    with pytest.raises(QuantizationError, match="'b.weight'.*not a multiple of 32"):
        plan_tensors(tensors, parse_target("q8_0"), strict=True)


def test_target_names_are_case_insensitive_and_unknown_names_list_choices() -> None:
    assert parse_target("Q8_0").qtype == GGMLType.Q8_0
    with pytest.raises(UsageError, match="choose one of: f32, f16, bf16, q8_0"):
        parse_target("q9")
