"""Per-tensor planning: converter rules for float targets, llama-quantize rules for the rest."""

from __future__ import annotations

import numpy as np
import pytest

from qconv.errors import QuantizationError, UsageError
from qconv.gguf.constants import GGMLType, LlamaFileType
from qconv.model.transforms import GeneratedTensor
from qconv.plan.plan import ModelFacts, keeps_f32, parse_target, plan_tensors


def tensor(name: str, *shape: int, dtype: str = "F32") -> tuple[str, GeneratedTensor]:
    return name, GeneratedTensor(name, np.zeros(shape, dtype=np.float32), dtype)


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
    ("target", "n_cols", "chosen"),
    [
        ("q4_0", 64, GGMLType.Q4_0),
        ("q4_0", 100, GGMLType.F16),
        ("q8_0", 100, GGMLType.F16),
        ("q4_k_s", 576, GGMLType.Q5_0),
        ("q6_k", 576, GGMLType.Q8_0),
        ("q2_k", 576, GGMLType.Q4_0),
        ("q6_k", 100, GGMLType.F16),
    ],
)
def test_fallbacks_follow_llama_cpp_and_are_flagged(
    target: str, n_cols: int, chosen: GGMLType
) -> None:
    (plan,) = plan_tensors([tensor("blk.0.ffn_up.weight", 8, n_cols)], parse_target(target))
    assert plan.qtype == chosen
    assert plan.fallback == ((n_cols % 256 != 0 and target != "q4_0") or n_cols % 32 != 0)
    assert ("fallback" in plan.reason) == plan.fallback


def test_strict_refuses_fallbacks_naming_the_tensor() -> None:
    tensors = [tensor("a.weight", 4, 64), tensor("b.weight", 4, 100), tensor("n.weight", 64)]
    plans = plan_tensors(tensors, parse_target("q8_0"))
    assert [(p.qtype, p.fallback) for p in plans] == [
        (GGMLType.Q8_0, False),
        (GGMLType.F16, True),
        (GGMLType.F32, False),
    ]
    assert plans[1].nbytes == 4 * 100 * 2
    with pytest.raises(QuantizationError, match=r"'b\.weight'.*--strict"):
        plan_tensors(tensors, parse_target("q8_0"), strict=True)


def test_float_targets_keep_converter_order_and_types() -> None:
    tensors = [tensor("output.weight", 8, 64), tensor("blk.0.attn_norm.weight", 64)]
    plans = plan_tensors(tensors, parse_target("bf16"))
    assert [(p.name, p.qtype) for p in plans] == [
        ("output.weight", GGMLType.BF16),
        ("blk.0.attn_norm.weight", GGMLType.F32),
    ]


def test_q4_k_m_applies_mixture_rules_in_llama_quantize_order() -> None:
    names = [
        "token_embd.weight",
        "blk.1.attn_v.weight",
        "blk.0.attn_v.weight",
        "blk.0.attn_norm.weight",
        "output.weight",
    ]
    tensors = [tensor(n, 256) if "norm" in n else tensor(n, 512, 256, dtype="BF16") for n in names]
    plans = plan_tensors(tensors, parse_target("q4_k_m"), facts=ModelFacts(n_layer=2))
    assert [p.name for p in plans] == [
        "output.weight",
        "token_embd.weight",
        "blk.0.attn_norm.weight",
        "blk.0.attn_v.weight",
        "blk.1.attn_v.weight",
    ]
    assert [p.qtype for p in plans] == [
        GGMLType.Q6_K,  # output
        GGMLType.Q4_K,  # untied token embeddings keep the default
        GGMLType.F32,
        GGMLType.Q4_K,  # use_more_bits(0, 2) is false: 0 < 2/8 and 0 >= 7*2/8 both fail
        GGMLType.Q6_K,  # use_more_bits(1, 2): 1 >= 7*2/8
    ]


def test_pure_gives_every_quantizable_tensor_the_type() -> None:
    tensors = [tensor("output.weight", 8, 256), tensor("blk.0.attn_v.weight", 8, 256)]
    plans = plan_tensors(tensors, parse_target("q4_k", pure=True), facts=ModelFacts(n_layer=1))
    assert {p.qtype for p in plans} == {GGMLType.Q4_K}
    assert parse_target("q4_k", pure=True).ftype == LlamaFileType.MOSTLY_Q4_K_M


@pytest.mark.parametrize(
    ("name", "pure", "message"),
    [
        ("q9", False, "choose one of: f32, f16, bf16, q2_k"),
        ("q4_k", False, "add --pure"),
        ("f16", True, "--pure applies to quantized types"),
    ],
)
def test_bad_target_names_are_usage_errors(name: str, pure: bool, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_target(name, pure=pure)


def test_target_names_are_case_insensitive() -> None:
    assert parse_target("Q4_K_M").ftype == LlamaFileType.MOSTLY_Q4_K_M
