"""The architecture layer reproduces what llama.cpp's converter writes (golden files), no torch."""

from __future__ import annotations

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

from qconv.errors import SourceError, UsageError
from qconv.gguf.constants import GGMLType, GGUFValueType, LlamaFileType
from qconv.model.architecture import Architecture, select_architecture

ARCH_NAMES = sorted(CASES)
FILE_TYPES = {
    "f32": LlamaFileType.ALL_F32,
    "bf16": LlamaFileType.MOSTLY_BF16,
    "f16": LlamaFileType.MOSTLY_F16,
    "q8_0": LlamaFileType.MOSTLY_Q8_0,
}


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
    arch = select_architecture(case.config)
    ours = arch.header() + arch.metadata(case.config, int(FILE_TYPES[outtype]))
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
    arch = select_architecture(case.config)
    hf = sorted(n for n, _ in tensor_shapes(case))  # the converter walks names in sorted order
    shapes = dict(tensor_shapes(case))
    ours = [(n, tuple(t.shape)) for n, t in arch.extra_tensors(case.config)]
    ours += [(arch.gguf_name(n), shapes[n]) for n in hf]
    theirs = [(n, shape) for n, _, shape, _ in golden_tensors(golden_path(case))]
    assert ours == theirs


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_row_order_reproduces_golden_bf16_data_exactly(name: str) -> None:
    # The checkpoint is BF16 and so is this golden: each tensor's bytes are the source's bytes
    # reordered by row_order, so any wrong permutation shows as a mismatch.
    case = CASES[name]
    if not _available(name, "bf16"):
        pytest.skip("golden not generated")
    arch = select_architecture(case.config)
    source = source_tensors(case)
    golden = {n: (t, d) for n, t, _, d in golden_tensors(golden_path(case, "bf16"))}
    for hf_name, values in source.items():
        gguf_name = arch.gguf_name(hf_name)
        perm = arch.row_order(hf_name, values.shape, case.config)
        rows = values if perm is None else values[perm]
        qtype, data = golden[gguf_name]
        if qtype == GGMLType.F32:
            expected = rows.tobytes()
        else:
            assert qtype == GGMLType.BF16, gguf_name
            expected = (rows.view(np.uint32) >> 16).astype(np.uint16).tobytes()
        assert data.tobytes() == expected, hf_name


@pytest.mark.parametrize("name", ["llama3"])
def test_llama3_rope_freqs_equal_golden_bits(name: str) -> None:
    case = CASES[name]
    arch = select_architecture(case.config)
    ((tensor_name, factors),) = arch.extra_tensors(case.config)
    golden = {n: d for n, _, _, d in golden_tensors(golden_path(case))}
    assert tensor_name == "rope_freqs.weight"
    assert factors.dtype == np.float32
    assert factors.tobytes() == golden[tensor_name].tobytes()
    assert factors[0] == 1 and factors[-1] == 32  # high-frequency kept, low-frequency scaled


def test_permutation_interleaves_the_two_halves_of_each_head() -> None:
    arch = select_architecture({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    config = {"num_attention_heads": 2, "num_key_value_heads": 1}
    q = arch.row_order("model.layers.0.self_attn.q_proj.weight", (8, 4), config)
    k = arch.row_order("model.layers.0.self_attn.k_proj.bias", (4,), config)
    assert q is not None and k is not None
    assert q.tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    assert k.tolist() == [0, 2, 1, 3]
    assert arch.row_order("model.layers.0.self_attn.v_proj.weight", (8, 4), config) is None


def test_qwen_families_keep_rows_as_stored() -> None:
    for name in ("qwen2", "qwen3"):
        case = CASES[name]
        arch = select_architecture(case.config)
        assert (
            arch.row_order("model.layers.0.self_attn.q_proj.weight", (32, 32), case.config) is None
        )


def test_rows_that_do_not_split_into_heads_are_a_source_error() -> None:
    arch = select_architecture({"architectures": ["LlamaForCausalLM"]})
    with pytest.raises(SourceError, match="num_attention_heads"):
        arch.row_order("model.layers.0.self_attn.q_proj.weight", (6, 4), {"num_attention_heads": 4})


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
def test_architecture_is_chosen_from_config(config: dict[str, object], expected: str) -> None:
    arch = select_architecture(config)
    assert (arch.name, arch.known) == (expected, True)


def test_unknown_architecture_converts_in_generic_mode_keeping_names() -> None:
    arch = select_architecture({"architectures": ["FancyForCausalLM"], "model_type": "fancy"})
    assert arch == Architecture("fancy", known=False)
    assert arch.gguf_name("model.layers.0.fancy.weight") == "model.layers.0.fancy.weight"
    assert arch.header()[0].value == "fancy"
    keys = [kv.key for kv in arch.metadata({"num_hidden_layers": 2, "hidden_size": 8}, 0)]
    assert keys[:2] == ["fancy.block_count", "fancy.embedding_length"]


def test_forced_architecture_overrides_config_and_unknown_names_are_usage_errors() -> None:
    config = {"architectures": ["FancyForCausalLM"], "model_type": "fancy"}
    assert select_architecture(config, forced="llama").known
    assert select_architecture(config, forced="Qwen2ForCausalLM").name == "qwen2"
    assert not select_architecture({"architectures": ["LlamaForCausalLM"]}, "generic").known
    with pytest.raises(UsageError, match="--arch 'nope'"):
        select_architecture(config, forced="nope")


def test_unmapped_tensor_in_known_architecture_names_tensor_and_way_out() -> None:
    arch = select_architecture({"architectures": ["LlamaForCausalLM"]})
    with pytest.raises(
        SourceError, match=r"model.layers.0.mlp.experts.0.w1.weight.*--arch generic"
    ):
        arch.gguf_name("model.layers.0.mlp.experts.0.w1.weight")
    # q_norm is a Qwen3 tensor: a Llama file cannot hold it.
    with pytest.raises(SourceError):
        arch.gguf_name("model.layers.0.self_attn.q_norm.weight")


def test_rotary_buffers_are_dropped_and_tied_embeddings_detected() -> None:
    arch = select_architecture({"architectures": ["LlamaForCausalLM"]})
    assert arch.gguf_name("model.layers.3.self_attn.rotary_emb.inv_freq") is None
    assert arch.gguf_name("model.layers.11.mlp.down_proj.weight") == "blk.11.ffn_down.weight"
    assert arch.tied_embeddings(["model.embed_tokens.weight"])
    assert not arch.tied_embeddings(["model.embed_tokens.weight", "lm_head.weight"])


def test_missing_layer_count_is_a_source_error() -> None:
    arch = select_architecture({"architectures": ["LlamaForCausalLM"]})
    with pytest.raises(SourceError, match="num_hidden_layers"):
        arch.metadata({"hidden_size": 8}, 0)


def test_linear_and_yarn_rope_scaling_are_written_as_metadata() -> None:
    base = {"architectures": ["Qwen2ForCausalLM"], "num_hidden_layers": 1}
    linear = {**base, "rope_scaling": {"type": "linear", "factor": 2.0}}
    kvs = {kv.key: kv.value for kv in select_architecture(linear).metadata(linear, 0)}
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
    kvs = {kv.key: kv.value for kv in select_architecture(yarn).metadata(yarn, 0)}
    assert kvs["qwen2.rope.scaling.type"] == "yarn"
    assert kvs["qwen2.rope.scaling.original_context_length"] == 32768
