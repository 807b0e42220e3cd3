"""qconv.plan.mixture picks exactly the tensor types llama-quantize picks.

The goldens in tests/golden/mixture come from running the real llama-quantize (built from the
vendored llama.cpp by tools/make_mixture_goldens.py) on small Llama-shaped GGUF files; the unit
tests pin the individual rules of src/llama-quant.cpp they depend on.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from qconv.errors import QuantizationError, UsageError
from qconv.gguf.constants import GGMLType, LlamaFileType
from qconv.plan.mixture import (
    FTYPE_NAMES,
    PURE_ALIASES,
    Category,
    MixtureTensor,
    allows_quantization,
    choose_types,
    default_type,
    fallback_type,
    get_category,
    layer_of,
    llama_quantize_order,
    resolve_ftype,
    use_more_bits,
)

GOLDEN_DIR = Path(__file__).parent / "golden" / "mixture"
GOLDENS = sorted(GOLDEN_DIR.glob("*.json"))
Q4_K_M = LlamaFileType.MOSTLY_Q4_K_M


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def golden_runs() -> list[tuple[Path, str]]:
    return [(path, run) for path in GOLDENS for run in load(path)["types"]]


def replay(golden: dict, run: str) -> list[str]:
    case = golden["case"]
    tensors = [MixtureTensor(name, tuple(shape)) for name, shape, _ in golden["tensors"]]
    ftype_name, *flags = run.split("+")
    choices = choose_types(
        tensors,
        FTYPE_NAMES[ftype_name],
        pure="pure" in flags,
        has_imatrix="imatrix" in flags,
        n_layer=case["n_layer"],
        n_expert=case["n_expert"],
        n_gqa=case["n_head"] // case["n_head_kv"],
        source_types=[GGMLType[source] for _, _, source in golden["tensors"]],
    )
    return [c.qtype.name for c in choices]


def test_goldens_cover_every_file_type_and_edge_shape() -> None:
    runs = {run for _, run in golden_runs()}
    assert {*FTYPE_NAMES, "q4_k_m+pure", "q4_0+imatrix", "iq4_nl+imatrix", "iq4_xs+imatrix"} <= runs
    shapes = {shape[-1] for path in GOLDENS for _, shape, _ in load(path)["tensors"]}
    assert {256, 576, 608, 80} <= shapes  # multiples of 256, of 32 only, and of neither


@pytest.mark.parametrize(("path", "run"), golden_runs(), ids=lambda v: getattr(v, "stem", v))
def test_choose_types_matches_llama_quantize(path: Path, run: str) -> None:
    golden = load(path)
    got = replay(golden, run)
    want = golden["types"][run].split()
    diff = [
        f"{name}: {g} != {w}"
        for (name, _, _), g, w in zip(golden["tensors"], got, want, strict=True)
        if g != w
    ]
    assert not diff, "\n".join(diff)


@pytest.mark.parametrize("path", GOLDENS, ids=lambda p: p.stem)
def test_order_matches_llama_quantize_output(path: Path) -> None:
    golden = load(path)
    names = [name for name, _, _ in golden["tensors"]]
    want = golden["llama_quantize_order"].split()
    assert [names[i] for i in llama_quantize_order(names)] == want


def test_use_more_bits_picks_the_documented_layers() -> None:
    assert [i for i in range(32) if use_more_bits(i, 32)] == [
        0,
        1,
        2,
        3,
        *range(6, 28, 3),
        28,
        29,
        30,
        31,
    ]
    assert [i for i in range(30) if use_more_bits(i, 30)] == [
        0,
        1,
        2,
        *range(5, 26, 3),
        26,
        27,
        28,
        29,
    ]


def test_order_puts_unnumbered_first_then_layers_numerically_then_bytewise() -> None:
    names = [
        "blk.10.attn_q.weight",
        "token_embd.weight",
        "blk.2.ffn_up.weight",
        "output_norm.weight",
        "blk.2.attn_k.weight",
        "output.weight",
        "blk.x.weight",
    ]
    ordered = [names[i] for i in llama_quantize_order(names)]
    assert ordered == [
        "blk.x.weight",
        "output.weight",
        "output_norm.weight",
        "token_embd.weight",
        "blk.2.attn_k.weight",
        "blk.2.ffn_up.weight",
        "blk.10.attn_q.weight",
    ]


@pytest.mark.parametrize(
    ("name", "layer"),
    [
        ("blk.3.attn_v.weight", 3),
        ("blk. 7.x", 7),
        ("blk.12x", 12),
        ("blk.-1.a", -1),
        ("blk.x.weight", None),
        ("xblk.3.a", None),
        ("token_embd.weight", None),
    ],
)
def test_layer_of_parses_like_sscanf(name: str, layer: int | None) -> None:
    assert layer_of(name) == layer


@pytest.mark.parametrize(
    ("qtype", "n_cols", "want"),
    [
        (GGMLType.Q4_K, 576, GGMLType.Q5_0),
        (GGMLType.Q5_K, 576, GGMLType.Q5_1),
        (GGMLType.Q6_K, 576, GGMLType.Q8_0),
        (GGMLType.Q2_K, 576, GGMLType.Q4_0),
        (GGMLType.Q3_K, 576, GGMLType.Q4_0),
        (GGMLType.Q4_K, 512, GGMLType.Q4_K),
        (GGMLType.Q4_K, 80, GGMLType.F16),
        (GGMLType.Q8_0, 80, GGMLType.F16),
        (GGMLType.Q8_0, 96, GGMLType.Q8_0),
    ],
)
def test_fallback_matches_tensor_type_fallback(
    qtype: GGMLType, n_cols: int, want: GGMLType
) -> None:
    assert fallback_type(qtype, n_cols) == want


@pytest.mark.parametrize(
    ("name", "shape", "allowed"),
    [
        ("blk.0.attn_norm.weight", (256,), False),
        ("blk.0.attn_q.weight", (1, 256), False),
        ("blk.0.ffn_gate_inp.weight", (8, 256), False),
        ("position_embd.weight", (64, 256), False),
        ("blk.0.attn_q.bias", (256, 256), False),
        ("blk.0.ffn_down_exps.weight", (8, 256, 512), True),
        ("blk.0.attn_q.weight", (256, 256), True),
    ],
)
def test_allows_quantization(name: str, shape: tuple[int, ...], allowed: bool) -> None:
    assert allows_quantization(MixtureTensor(name, shape)) is allowed


def test_unquantized_tensor_keeps_its_source_type_and_says_why() -> None:
    tensors = [MixtureTensor("blk.0.ffn_gate_inp.weight", (8, 256))]
    (choice,) = choose_types(tensors, Q4_K_M, n_layer=1, source_types=[GGMLType.BF16])
    assert choice.qtype == GGMLType.BF16
    assert "expert router" in choice.reason


def test_token_embd_gets_output_rule_only_when_tied() -> None:
    embd = MixtureTensor("token_embd.weight", (512, 256))
    output = MixtureTensor("output.weight", (512, 256))
    (tied,) = choose_types([embd], Q4_K_M, n_layer=1)
    untied = choose_types([embd, output], Q4_K_M, n_layer=1)
    assert (tied.qtype, tied.reason) == (GGMLType.Q6_K, "tied output/token_embd: always -> Q6_K")
    assert [c.qtype for c in untied] == [GGMLType.Q4_K, GGMLType.Q6_K]


def llama_layers(n_layer: int, hidden: int = 256) -> list[MixtureTensor]:
    return [
        MixtureTensor(f"blk.{i}.{part}.weight", (hidden, hidden))
        for i in range(n_layer)
        for part in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_down")
    ]


def test_counters_follow_sorted_order_not_input_order() -> None:
    tensors = llama_layers(12)
    shuffled = tensors[:]
    random.Random(0).shuffle(shuffled)
    by_name = {t.name: c for t, c in zip(tensors, choose_types(tensors, Q4_K_M), strict=True)}
    again = choose_types(shuffled, Q4_K_M)
    assert [by_name[t.name] for t in shuffled] == again


def test_attn_v_reason_names_the_rule_and_fallback() -> None:
    choices = choose_types(llama_layers(8, hidden=576), Q4_K_M)
    v0 = choices[2]
    assert v0.qtype == GGMLType.Q8_0
    assert v0.reason == "attn_v: use_more_bits(#0 of 8) -> Q6_K; fallback: row 576 % 256 -> Q8_0"


def test_70b_llama_bumps_attn_v_to_q5_k() -> None:
    # llama-quant.cpp `if (qs.model.type == LLM_TYPE_70B)`: Q3_K/Q4_K attn_v -> Q5_K;
    # models/llama.cpp: 80 layers with n_head != n_head_kv is 70B.
    tensors = [MixtureTensor(f"blk.{i}.attn_v.weight", (1024, 8192)) for i in range(80)]
    gqa = choose_types(tensors, LlamaFileType.MOSTLY_Q4_K_S, n_gqa=8)
    mha = choose_types(tensors, LlamaFileType.MOSTLY_Q4_K_S, n_gqa=1)
    assert {c.qtype for c in gqa} == {GGMLType.Q5_K}
    assert [c.qtype for c in mha[3:5]] == [GGMLType.Q5_K, GGMLType.Q4_K]


def test_expert_tensor_without_layer_is_refused() -> None:
    tensors = [MixtureTensor("ffn_down_exps.weight", (4, 256, 256))]
    with pytest.raises(QuantizationError, match="ffn_down_exps"):
        choose_types(tensors, Q4_K_M, n_layer=1, n_expert=4)


def test_pure_keeps_default_type_everywhere_but_still_falls_back() -> None:
    tensors = [MixtureTensor("token_embd.weight", (512, 576)), *llama_layers(4)]
    choices = choose_types(tensors, Q4_K_M, pure=True)
    assert choices[0].qtype == GGMLType.Q5_0
    assert {c.qtype for c in choices[1:]} == {GGMLType.Q4_K}


def test_float_file_types_apply_no_mixture() -> None:
    tensors = [MixtureTensor("output.weight", (512, 80)), *llama_layers(2)]
    choices = choose_types(tensors, LlamaFileType.MOSTLY_BF16)
    assert {c.qtype for c in choices} == {GGMLType.BF16}


def test_resolve_ftype_names_and_pure_aliases() -> None:
    assert resolve_ftype("Q4_K_M") == Q4_K_M
    assert resolve_ftype("q4_k", pure=True) == Q4_K_M
    with pytest.raises(UsageError, match="--pure"):
        resolve_ftype("q4_k")
    with pytest.raises(UsageError, match="unknown"):
        resolve_ftype("q4_k_xl")
    assert set(PURE_ALIASES) == {"q3_k", "q4_k", "q5_k"}


@pytest.mark.parametrize("name", ["iq2_xxs", "IQ1_S", "iq3_xxs", "q2_k_s", "iq2_m"])
def test_types_llama_quantize_makes_only_with_an_imatrix_are_refused_naming_it(name: str) -> None:
    with pytest.raises(UsageError, match=r"importance matrix \(--imatrix\).*iq4_xs"):
        resolve_ftype(name)


def test_iq4_xs_rows_that_do_not_split_into_256_fall_back_to_iq4_nl() -> None:
    assert fallback_type(GGMLType.IQ4_XS, 576) == GGMLType.IQ4_NL
    assert fallback_type(GGMLType.IQ4_XS, 80) == GGMLType.F16


def test_an_imatrix_moves_q4_0_first_ffn_down_layers_to_q4_1_and_iq4_off_q5_k() -> None:
    tensors = llama_layers(8)
    downs = [i for i, t in enumerate(tensors) if "ffn_down" in t.name]

    def types(ftype: LlamaFileType, has_imatrix: bool) -> list[str]:
        choices = choose_types(tensors, ftype, has_imatrix=has_imatrix)
        return [choices[i].qtype.name for i in downs]

    assert types(LlamaFileType.MOSTLY_Q4_0, False) == ["Q4_0"] * 8
    assert types(LlamaFileType.MOSTLY_Q4_0, True) == ["Q4_1"] + ["Q4_0"] * 7
    assert types(LlamaFileType.MOSTLY_IQ4_NL, False)[0] == "Q5_K"
    assert types(LlamaFileType.MOSTLY_IQ4_NL, True)[0] == "IQ4_NL"


def test_default_type_of_every_named_ftype() -> None:
    got = {name: default_type(ftype).name for name, ftype in FTYPE_NAMES.items()}
    assert got == {
        "q2_k": "Q2_K",
        "q3_k_s": "Q3_K",
        "q3_k_m": "Q3_K",
        "q3_k_l": "Q3_K",
        "q4_k_s": "Q4_K",
        "q4_k_m": "Q4_K",
        "q5_k_s": "Q5_K",
        "q5_k_m": "Q5_K",
        "q6_k": "Q6_K",
        "q4_0": "Q4_0",
        "q4_1": "Q4_1",
        "q5_0": "Q5_0",
        "q5_1": "Q5_1",
        "q8_0": "Q8_0",
        "iq4_nl": "IQ4_NL",
        "iq4_xs": "IQ4_XS",
    }
    with pytest.raises(UsageError):
        default_type(19)  # type: ignore[arg-type]  # IQ2_XXS: llama.cpp knows it, qconv does not


def test_category_checks_qkv_before_v_and_exact_output_name() -> None:
    assert get_category("blk.0.attn_qkv.weight") is Category.ATTN_QKV
    assert get_category("blk.0.ffn_down_exps.weight") is Category.FFN_DOWN
    assert get_category("output.weight") is Category.OUTPUT
    assert get_category("enc.output.weight") is Category.OTHER
