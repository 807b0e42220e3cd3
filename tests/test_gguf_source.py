"""A GGUF file or split set as the source: requantization rules, refusals, streaming views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qconv import quant
from qconv.conversion import plan_conversion
from qconv.errors import FormatError, SourceError, UsageError
from qconv.gguf.constants import GGMLType
from qconv.gguf.reader import read_gguf, tensor_data
from qconv.pipeline import convert
from qconv.plan.requantize import gguf_model_facts
from qconv.source.gguf import is_gguf_file, open_gguf_source

ARCH = Path(__file__).resolve().parent / "golden" / "arch"


@pytest.fixture
def bf16_file(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    return Path(convert(str(tiny_checkpoint), tmp_path / "m-BF16.gguf", target="bf16").output)


def test_only_files_starting_with_the_gguf_magic_are_gguf_input(
    bf16_file: Path, tiny_checkpoint: Path
) -> None:
    assert is_gguf_file(str(bf16_file))
    assert not is_gguf_file(str(tiny_checkpoint / "model.safetensors"))
    assert not is_gguf_file(str(tiny_checkpoint))


def test_gguf_tensors_read_rows_like_safetensors_tensors(bf16_file: Path) -> None:
    source = open_gguf_source(str(bf16_file))
    tensor = next(t for t in source.tensors if t.name == "blk.0.ffn_up.weight")
    assert (tensor.dtype, tensor.shape) == ("BF16", (512, 256))
    rows = tensor.read_rows(3, 7)
    assert rows.dtype == np.float32 and rows.shape == (4, 256)
    raw = tensor.raw_rows(3, 7)
    assert isinstance(raw, np.memmap) and raw.shape == (4, 512)  # a view of the file, not a copy
    assert np.array_equal(rows, quant.dequantize(np.asarray(raw), GGMLType.BF16, 256))


def test_the_models_facts_come_from_its_own_metadata() -> None:
    facts = gguf_model_facts(open_gguf_source(str(ARCH / "llama3" / "bf16.gguf")))
    assert (facts.arch, facts.n_layer, facts.n_expert, facts.n_gqa) == ("llama", 2, 0, 2)


def test_quantized_tensors_are_refused_without_allow_requantize() -> None:
    with pytest.raises(UsageError, match="already Q8_0 .*--allow-requantize"):
        plan_conversion(str(ARCH / "llama3" / "q8_0.gguf"), target="q4_0")


def test_allow_requantize_decodes_and_warns() -> None:
    plan = plan_conversion(str(ARCH / "llama3" / "q8_0.gguf"), target="q4_0", allow_requantize=True)
    assert any("requantizing" in warning for warning in plan.warnings)


def test_tensors_already_of_the_chosen_type_are_copied_without_refusal(tmp_path: Path) -> None:
    source = ARCH / "llama3" / "q8_0.gguf"
    out = tmp_path / "same.gguf"
    convert(str(source), out, target="q8_0")
    ours, theirs = read_gguf(out), read_gguf(source)
    stored = {t.name: tensor_data(theirs, t) for t in theirs.tensors}
    assert sorted(stored) == sorted(t.name for t in ours.tensors)
    for tensor in ours.tensors:
        assert np.array_equal(tensor_data(ours, tensor), stored[tensor.name]), tensor.name


@pytest.mark.parametrize(
    ("option", "flag"),
    [({"arch": "llama"}, "--arch"), ({"no_vocab": True}, "--no-vocab"),
     ({"revision": "main"}, "--revision"), ({"tokenizer_pre": "qwen2"}, "--tokenizer-pre")],
)  # fmt: skip
def test_checkpoint_only_options_are_usage_errors_with_gguf_input(
    option: dict[str, object], flag: str
) -> None:
    with pytest.raises(UsageError, match=flag):
        plan_conversion(str(ARCH / "llama3" / "bf16.gguf"), target="q4_0", **option)  # type: ignore[arg-type]


def test_a_split_set_converts_like_the_whole_file(bf16_file: Path, tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    parts = convert(str(bf16_file), tmp_path / "set" / "m.gguf", target="bf16",
                    split_max_tensors=5).parts  # fmt: skip
    assert len(parts) > 1
    whole = convert(str(bf16_file), tmp_path / "whole.gguf", target="q4_k_m")
    from_set = convert(parts[0], tmp_path / "from-set.gguf", target="q4_k_m")
    assert Path(from_set.output).read_bytes() == Path(whole.output).read_bytes()
    assert read_gguf(from_set.output).get("split.count") is None


def test_a_split_set_with_a_missing_part_is_refused_as_input(
    bf16_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "set").mkdir()
    parts = convert(str(bf16_file), tmp_path / "set" / "m.gguf", target="q8_0",
                    split_max_tensors=5).parts  # fmt: skip
    Path(parts[-1]).unlink()
    with pytest.raises(FormatError, match="is missing"):
        plan_conversion(parts[0], target="q4_0")


def test_a_kept_tensor_of_a_type_qconv_cannot_decode_is_copied_and_others_refused(
    gguf_bytes, tmp_path: Path
) -> None:
    iq2_xxs = 16  # 256-element blocks of 66 bytes; qconv has no kernel for it
    block = bytes(range(66))
    kvs = [("general.architecture", 8, "llama")]
    norm = tmp_path / "norm.gguf"
    norm.write_bytes(gguf_bytes(kvs, [("output_norm.weight", (256,), iq2_xxs)], data=block))
    out = tmp_path / "out.gguf"
    convert(str(norm), out, target="q4_0")
    written = read_gguf(out)
    assert np.asarray(tensor_data(written, written.tensors[0])).tobytes() == block
    matrix = tmp_path / "matrix.gguf"
    tensors = [("blk.0.attn_q.weight", (2, 256), iq2_xxs)]
    matrix.write_bytes(gguf_bytes(kvs, tensors, data=block * 2))
    with pytest.raises(SourceError, match="IQ2_XXS, which qconv cannot decode"):
        plan_conversion(str(matrix), target="q4_0", allow_requantize=True)
