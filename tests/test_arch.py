"""The model layer reproduces what llama.cpp's converter writes (golden files), no torch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from arch_fixtures import (
    CASES,
    golden_kvs,
    golden_path,
    golden_tensors,
    source_tensors,
    tensor_shapes,
)

from qconv.errors import FormatError, SourceError, UsageError
from qconv.gguf.constants import GGMLType, GGUFValueType, LlamaFileType
from qconv.model.architecture import Architecture, select_architecture
from qconv.model.config import ModelConfig
from qconv.model.transforms import GeneratedTensor

ARCH_NAMES = sorted(CASES)
FILE_TYPES = {
    "f32": LlamaFileType.ALL_F32,
    "bf16": LlamaFileType.MOSTLY_BF16,
    "f16": LlamaFileType.MOSTLY_F16,
    "q8_0": LlamaFileType.MOSTLY_Q8_0,
}


def arch_for(config: dict[str, Any], forced: str | None = None) -> Architecture:
    return select_architecture(ModelConfig.from_json(config), forced)


def fake(name: str, shape: tuple[int, ...], values: np.ndarray | None = None) -> GeneratedTensor:
    data = values if values is not None else np.zeros(shape, dtype=np.float32)
    return GeneratedTensor(name, data.astype(np.float32), "BF16")


def mapped(arch: Architecture, *names_shapes: tuple[str, tuple[int, ...]]) -> list[str]:
    return [name for name, _ in arch.tensors([fake(n, s) for n, s in names_shapes])]


def _available(name: str, outtype: str | None = None) -> bool:
    case = CASES[name]
    return (outtype is None or outtype in case.outtypes) and golden_path(case, outtype).is_file()


def _same_value(vtype: int, ours: object, theirs: object) -> bool:
    if vtype == GGUFValueType.FLOAT32:
        return bool(np.float32(ours) == np.float32(theirs))  # type: ignore[arg-type]
    return ours == theirs


@pytest.mark.parametrize("outtype", list(FILE_TYPES))
@pytest.mark.parametrize("name", ARCH_NAMES)
def test_hyperparameter_kvs_equal_llama_cpp_golden_in_order(name: str, outtype: str) -> None:
    case = CASES[name]
    if not _available(name, outtype):
        pytest.skip("golden not generated")
    arch = arch_for(case.config)
    ours = arch.header() + arch.metadata(int(FILE_TYPES[outtype]))
    keys = {kv.key for kv in ours}
    theirs = [g for g in golden_kvs(golden_path(case, outtype)) if g.key in keys]
    assert [kv.key for kv in ours] == [g.key for g in theirs]
    for kv, g in zip(ours, theirs, strict=True):
        assert int(kv.vtype) == g.vtype, kv.key
        assert _same_value(g.vtype, kv.value, g.value), (kv.key, kv.value, g.value)
    # Every architecture key llama.cpp wrote is one we produce (none missing).
    prefix = f"{arch.name}."
    written = {g.key for g in golden_kvs(golden_path(case, outtype)) if g.key.startswith(prefix)}
    assert written <= keys


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_tensor_names_shapes_and_order_match_golden(name: str) -> None:
    case = CASES[name]
    if not _available(name):
        pytest.skip("golden not generated")
    arch = arch_for(case.config)
    hf = sorted(tensor_shapes(case))  # the converter walks names in sorted order
    ours = [(n, tuple(t.shape)) for n, t in arch.extra_tensors()]
    ours += [(n, tuple(d.shape)) for n, d in arch.tensors([fake(n, s) for n, s in hf])]
    theirs = [(n, shape) for n, _, shape, _ in golden_tensors(golden_path(case))]
    assert ours == theirs


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_transforms_reproduce_golden_bf16_data_exactly(name: str) -> None:
    # The checkpoint is BF16 and so is this golden: each tensor's bytes are the source's bytes
    # after the spec's transforms (Q/K row permutation), so any wrong view shows as a mismatch.
    case = CASES[name]
    if not _available(name, "bf16"):
        pytest.skip("golden not generated")
    arch = arch_for(case.config)
    source = source_tensors(case)
    golden = {n: (t, d) for n, t, _, d in golden_tensors(golden_path(case, "bf16"))}
    views = arch.tensors([fake(n, v.shape, v) for n, v in sorted(source.items())])
    for gguf_name, view in views:
        rows = view.read_rows(0, int(np.prod(view.shape[:-1], dtype=np.int64)))
        qtype, data = golden[gguf_name]
        if qtype == GGMLType.F32:
            expected = rows.tobytes()
        else:
            assert qtype == GGMLType.BF16, gguf_name
            expected = (rows.view(np.uint32) >> 16).astype(np.uint16).tobytes()
        assert data.tobytes() == expected, gguf_name


def test_llama3_rope_freqs_equal_golden_bits() -> None:
    case = CASES["llama3"]
    arch = arch_for(case.config)
    ((tensor_name, factors),) = arch.extra_tensors()
    golden = {n: d for n, _, _, d in golden_tensors(golden_path(case))}
    assert tensor_name == "rope_freqs.weight"
    assert factors.dtype == np.float32
    assert factors.tobytes() == golden[tensor_name].tobytes()
    assert factors[0] == 1 and factors[-1] == 32  # high-frequency kept, low-frequency scaled


LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": 1}


def test_permutation_interleaves_the_two_halves_of_each_head() -> None:
    arch = arch_for({**LLAMA, "num_attention_heads": 2, "num_key_value_heads": 1})
    rows = np.arange(8, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)
    q = dict(arch.tensors([fake("model.layers.0.self_attn.q_proj.weight", (8, 4), rows)]))
    k = dict(arch.tensors([fake("model.layers.0.self_attn.k_proj.weight", (4, 4), rows[:4])]))
    v = dict(arch.tensors([fake("model.layers.0.self_attn.v_proj.weight", (8, 4), rows)]))
    assert q["blk.0.attn_q.weight"].read_rows(0, 8)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    assert k["blk.0.attn_k.weight"].read_rows(0, 4)[:, 0].tolist() == [0, 2, 1, 3]
    assert v["blk.0.attn_v.weight"].read_rows(0, 8)[:, 0].tolist() == list(range(8))


def test_mistral_without_kv_heads_uses_transformers_default_for_header_and_rows() -> None:
    # MistralConfig's num_key_value_heads defaults to 8: the header and the K permutation must
    # both use it (they used to disagree: 8 in the header, 16 heads in the rows).
    config = {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "num_hidden_layers": 1,
        "hidden_size": 256,
        "num_attention_heads": 16,
    }
    arch = arch_for(config)
    kvs = {kv.key: kv.value for kv in arch.metadata(0)}
    assert kvs["llama.attention.head_count_kv"] == 8
    rows = np.arange(128, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)
    k = dict(arch.tensors([fake("model.layers.0.self_attn.k_proj.weight", (128, 4), rows)]))
    got = k["blk.0.attn_k.weight"].read_rows(0, 128)[:16, 0].tolist()
    assert got == [0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15]  # 8 heads of 16 rows


def test_qwen_families_keep_rows_as_stored() -> None:
    for name in ("qwen2", "qwen3"):
        arch = arch_for(CASES[name].config)
        assert not arch.spec or not arch.spec.permutes_qk


def test_rows_that_do_not_split_into_heads_are_a_source_error() -> None:
    arch = arch_for({**LLAMA, "num_attention_heads": 4})
    with pytest.raises(SourceError, match="num_attention_heads"):
        mapped(arch, ("model.layers.0.self_attn.q_proj.weight", (6, 4)))


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}, "llama"),
        ({"architectures": ["MistralForCausalLM"], "model_type": "mistral"}, "llama"),
        ({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}, "qwen2"),
        ({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"}, "qwen3"),
        ({"model_type": "qwen3"}, "qwen3"),
    ],
)
def test_architecture_is_chosen_from_config(config: dict[str, Any], expected: str) -> None:
    arch = arch_for(config)
    assert (arch.name, arch.known) == (expected, True)


def test_unknown_architecture_is_refused_naming_the_known_ones_and_arch_generic() -> None:
    with pytest.raises(SourceError, match=r"FancyForCausalLM.*LlamaForCausalLM.*--arch generic"):
        arch_for({"architectures": ["FancyForCausalLM"], "model_type": "fancy"})


def test_arch_generic_keeps_hugging_face_names() -> None:
    config = {"architectures": ["FancyForCausalLM"], "model_type": "fancy"}
    arch = arch_for(config, "generic")
    assert not arch.known and arch.header()[0].value == "fancy"
    assert mapped(arch, ("model.layers.0.fancy.weight", (2, 2))) == ["model.layers.0.fancy.weight"]
    assert [kv.key for kv in arch.metadata(0)] == [
        "general.file_type",
        "general.quantization_version",
    ]


def test_forced_architecture_overrides_config_and_unknown_names_are_usage_errors() -> None:
    config = {"architectures": ["FancyForCausalLM"], "model_type": "fancy"}
    assert arch_for(config, forced="llama").known
    assert arch_for(config, forced="Qwen2ForCausalLM").name == "qwen2"
    with pytest.raises(UsageError, match="--arch 'nope'"):
        arch_for(config, forced="nope")


def test_unmapped_tensor_in_known_architecture_names_tensor_and_way_out() -> None:
    arch = arch_for(LLAMA)
    with pytest.raises(
        SourceError, match=r"model.layers.0.mlp.experts.0.w1.weight.*--arch generic"
    ):
        mapped(arch, ("model.layers.0.mlp.experts.0.w1.weight", (2, 2)))
    # q_norm is a Qwen3 tensor: a Llama file cannot hold it.
    with pytest.raises(SourceError):
        mapped(arch, ("model.layers.0.self_attn.q_norm.weight", (2,)))


def test_rotary_buffers_are_dropped() -> None:
    arch = arch_for(LLAMA)
    names = mapped(
        arch,
        ("model.layers.3.self_attn.rotary_emb.inv_freq", (4,)),
        ("model.layers.11.mlp.down_proj.weight", (2, 2)),
    )
    assert names == ["blk.11.ffn_down.weight"]


def test_missing_layer_count_is_a_source_error_naming_config_json() -> None:
    arch = arch_for({"architectures": ["LlamaForCausalLM"], "hidden_size": 8})
    with pytest.raises(SourceError, match="config.json has no 'num_hidden_layers'"):
        arch.metadata(0)


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("num_hidden_layers", "four", "'num_hidden_layers' must be an integer, got 'four'"),
        ("num_hidden_layers", -2, "'num_hidden_layers' is -2; it must be at least 0"),
        ("rope_theta", "abc", "'rope_theta' must be a number"),
        ("architectures", 5, "'architectures' must be a list"),
    ],
)
def test_wrong_config_values_are_one_line_format_errors_naming_the_key(
    key: str, value: object, fragment: str
) -> None:
    with pytest.raises(FormatError, match=fragment):
        arch_for({**LLAMA, key: value}).metadata(0)


def test_linear_and_yarn_rope_scaling_are_written_as_metadata() -> None:
    base = {"architectures": ["Qwen2ForCausalLM"], "num_hidden_layers": 1}
    linear = {**base, "rope_scaling": {"type": "linear", "factor": 2.0}}
    kvs = {kv.key: kv.value for kv in arch_for(linear).metadata(0)}
    assert kvs["qwen2.rope.scaling.type"] == "linear"
    assert kvs["qwen2.rope.scaling.factor"] == 2.0
    yarn = {
        **base,
        "rope_scaling": {
            "rope_type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 32768,
        },
    }
    kvs = {kv.key: kv.value for kv in arch_for(yarn).metadata(0)}
    assert kvs["qwen2.rope.scaling.type"] == "yarn"
    assert kvs["qwen2.rope.scaling.original_context_length"] == 32768


def test_yarn_without_original_context_is_a_format_error() -> None:
    yarn = {
        "architectures": ["Qwen2ForCausalLM"],
        "num_hidden_layers": 1,
        "rope_scaling": {"rope_type": "yarn", "factor": 4.0},
    }
    with pytest.raises(FormatError, match="original_max_position_embeddings"):
        arch_for(yarn).metadata(0)
