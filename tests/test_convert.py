"""End-to-end conversions, checked with llama.cpp's gguf package as independent reader/quantizer."""

from __future__ import annotations

import io
import os
from pathlib import Path

import gguf
import numpy as np
import pytest
from synthetic import write_safetensors

from qconv.conversion import plan_conversion
from qconv.errors import FormatError, OutputError, QuantizationError, SourceError, UsageError
from qconv.gguf.constants import GGMLType, GGUFValueType
from qconv.gguf.metadata import KV
from qconv.pipeline import convert
from qconv.source import open_source, read_safetensors_header


def read_tensors(path: Path) -> dict[str, gguf.ReaderTensor]:
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def source_rows(model: Path, name: str) -> np.ndarray:
    ref = next(r for r in open_source(str(model)).tensors if r.name == name)
    return ref.read_rows(0, ref.n_rows)


def field_value(reader: gguf.GGUFReader, key: str) -> object:
    return reader.fields[key].contents()


@pytest.mark.parametrize("target", ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"])
def test_quantized_tensors_equal_gguf_quants_of_the_widened_source(
    tiny_checkpoint: Path, tmp_path: Path, target: str
) -> None:
    out = tmp_path / "out.gguf"
    convert(str(tiny_checkpoint), out, target=target, jobs=1)
    qtype = gguf.GGMLQuantizationType[target.upper()]
    tensors = read_tensors(out)
    source = source_rows(tiny_checkpoint, "model.layers.1.mlp.down_proj.weight")
    expected = gguf.quants.quantize(source, qtype)
    written = tensors["blk.1.ffn_down.weight"]
    assert written.tensor_type == qtype
    assert np.array_equal(np.asarray(written.data).reshape(expected.shape), expected)


def test_gguf_reader_sees_the_planned_names_shapes_types_and_offsets(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.gguf"
    report = convert(str(tiny_checkpoint), out, target="q8_0", jobs=1)
    reader = gguf.GGUFReader(out)
    plans = report.conversion.plans
    assert [t.name for t in reader.tensors] == [p.name for p in plans]
    for tensor, plan in zip(reader.tensors, plans, strict=True):
        assert tuple(int(d) for d in reversed(tensor.shape)) == plan.shape
        assert int(tensor.tensor_type) == int(plan.qtype)
        assert tensor.n_bytes == plan.nbytes
    offsets = [int(t.data_offset) for t in reader.tensors]
    assert all(o % 32 == 0 for o in offsets) and offsets == sorted(offsets)
    assert out.stat().st_size == report.bytes_written
    assert field_value(reader, "general.architecture") == "llama"
    assert field_value(reader, "general.file_type") == 7
    assert field_value(reader, "general.quantization_version") == 2


def test_bf16_source_widens_exactly_to_f32(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.gguf"
    convert(str(tiny_checkpoint), out, target="f32", jobs=1)
    name = "model.layers.0.mlp.up_proj.weight"
    ref = next(r for r in open_source(str(tiny_checkpoint)).tensors if r.name == name)
    raw = np.fromfile(ref.path, dtype="<u2", count=ref.nbytes // 2, offset=ref.offset)
    expected = (raw.astype(np.uint32) << 16).view(np.float32).reshape(ref.shape)
    assert np.array_equal(np.asarray(read_tensors(out)["blk.0.ffn_up.weight"].data), expected)


@pytest.mark.parametrize(
    ("hf", "gguf_name", "heads"), [("q_proj", "attn_q", 4), ("k_proj", "attn_k", 2)]
)
def test_query_and_key_rows_are_permuted_to_llama_cpp_rope_layout(
    tiny_checkpoint: Path, tmp_path: Path, hf: str, gguf_name: str, heads: int
) -> None:
    out = tmp_path / "out.gguf"
    convert(str(tiny_checkpoint), out, target="f32", jobs=1)
    source = source_rows(tiny_checkpoint, f"model.layers.1.self_attn.{hf}.weight")
    # convert_hf_to_gguf.py's LlamaModel.permute, written out independently
    rows = source.shape[0]
    expected = source.reshape(heads, 2, rows // heads // 2, -1).swapaxes(1, 2).reshape(source.shape)
    assert np.array_equal(np.asarray(read_tensors(out)[f"blk.1.{gguf_name}.weight"].data), expected)


def test_bf16_target_keeps_bf16_source_bits(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.gguf"
    convert(str(tiny_checkpoint), out, target="bf16", jobs=1)
    ref = next(
        r
        for r in open_source(str(tiny_checkpoint)).tensors
        if r.name == "model.embed_tokens.weight"
    )
    raw = np.fromfile(ref.path, dtype=np.uint8, count=ref.nbytes, offset=ref.offset)
    written = read_tensors(out)["token_embd.weight"]
    assert np.array_equal(np.asarray(written.data).view(np.uint8).ravel(), raw)


def test_folder_file_and_hub_give_identical_files(
    tiny_checkpoint: Path, hub_cache: Path, tmp_path: Path
) -> None:
    outputs = {}
    for label, spec in {
        "folder": str(tiny_checkpoint),
        "file": str(tiny_checkpoint / "model.safetensors"),
        "hub": "qconv-test/tiny-llama",
    }.items():
        out = tmp_path / f"{label}.gguf"
        # a file's default general.name comes from its own file name, so pin it for that one
        meta = ["general.name=Tiny Llama"] if label == "file" else []
        convert(spec, out, target="q4_0", jobs=1, metadata=meta)
        outputs[label] = out.read_bytes()
    assert outputs["folder"] == outputs["hub"]
    assert outputs["file"] == outputs["folder"]


def test_shards_are_read_from_the_index_with_the_same_tensor_data(
    tiny_checkpoint: Path, sharded_checkpoint: Path, tmp_path: Path
) -> None:
    convert(str(tiny_checkpoint), tmp_path / "single.gguf", target="q8_0", jobs=1)
    convert(str(sharded_checkpoint), tmp_path / "sharded.gguf", target="q8_0", jobs=1)
    single, sharded = (
        read_tensors(tmp_path / "single.gguf"),
        read_tensors(tmp_path / "sharded.gguf"),
    )
    assert sorted(single) == sorted(sharded)
    for name, tensor in single.items():
        assert np.array_equal(np.asarray(tensor.data), np.asarray(sharded[name].data)), name
    # llama.cpp's converter order: shard files in index order, names sorted within each shard
    shard_names = sorted(p.name for p in sharded_checkpoint.glob("model-*.safetensors"))
    assert next(iter(sharded)) == "token_embd.weight"  # first tensor of the first shard
    assert len(shard_names) == 3


def test_two_worker_processes_write_the_same_bytes_as_one(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("qconv.pipeline.CHUNK_BYTES", 64 * 1024)  # many chunks per tensor
    convert(str(tiny_checkpoint), tmp_path / "one.gguf", target="q4_0", jobs=1)
    convert(str(tiny_checkpoint), tmp_path / "two.gguf", target="q4_0", jobs=2)
    assert (tmp_path / "one.gguf").read_bytes() == (tmp_path / "two.gguf").read_bytes()


def test_streaming_to_a_binary_stream_matches_the_file(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    convert(str(tiny_checkpoint), tmp_path / "file.gguf", target="q8_0", jobs=1)
    stream = io.BytesIO()
    convert(str(tiny_checkpoint), stream, target="q8_0", jobs=1)
    assert stream.getvalue() == (tmp_path / "file.gguf").read_bytes()


def test_mixed_dtypes_norms_biases_and_fallbacks_are_planned(mixed_checkpoint: Path) -> None:
    conversion = plan_conversion(str(mixed_checkpoint), target="q4_0", arch="generic")
    types = {p.name: (p.qtype, p.reason) for p in conversion.plans}
    assert types["w.f32.weight"][0] == GGMLType.Q4_0
    assert types["w.f16.weight"][0] == GGMLType.Q4_0
    assert types["norm.weight"][0] == GGMLType.F32
    assert types["proj.bias"][0] == GGMLType.F32
    assert types["odd.weight"][0] == GGMLType.F16
    assert "100" in types["odd.weight"][1]
    assert conversion.warnings[-1] == f"odd.weight: {types['odd.weight'][1]}"
    assert "llama.cpp will not run" in conversion.warnings[0]  # generic: names kept, user told


def test_strict_turns_a_fallback_into_an_error(mixed_checkpoint: Path) -> None:
    with pytest.raises(QuantizationError, match="odd.weight.*--strict"):
        plan_conversion(str(mixed_checkpoint), target="q4_0", strict=True, arch="generic")


@pytest.mark.parametrize("jobs", [1, 2])
def test_non_finite_weights_fail_naming_the_tensor_and_leave_no_file(
    tmp_path: Path, jobs: int
) -> None:
    values = np.zeros((4, 64), dtype=np.float32)
    values[2, 5] = np.nan
    model = tmp_path / "nan.safetensors"
    good = {f"good{i}.weight": ("F32", np.ones((4, 64), dtype=np.float32)) for i in range(4)}
    write_safetensors(model, {**good, "bad.weight": ("F32", values)})
    out = tmp_path / "out.gguf"
    with pytest.raises(QuantizationError, match=r"bad.weight.*\[2, 5\].*nan"):
        convert(str(model), out, target="q8_0", jobs=jobs, arch="generic")
    assert list(tmp_path.iterdir()) == [model]


@pytest.mark.parametrize("dtype", ["I32", "F64"])
def test_unsupported_dtype_names_file_tensor_and_supported_types(
    tmp_path: Path, dtype: str
) -> None:
    model = tmp_path / "ints.safetensors"
    write_safetensors(model, {"ids.weight": (dtype, np.arange(64).reshape(2, 32))})
    with pytest.raises(
        SourceError, match=rf"ints.safetensors: tensor 'ids.weight' is {dtype}.*BF16"
    ):
        plan_conversion(str(model), target="q8_0", arch="generic")


def test_existing_output_needs_force(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.gguf"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="--force"):
        convert(str(tiny_checkpoint), out, target="f16", jobs=1)
    assert out.read_bytes() == b"keep me"
    convert(str(tiny_checkpoint), out, target="f16", jobs=1, force=True)
    assert out.read_bytes()[:4] == b"GGUF"


def test_interrupted_write_leaves_neither_output_nor_temp_file(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def interrupt(nbytes: int) -> None:
        calls.append(nbytes)
        if len(calls) == 3:
            raise KeyboardInterrupt

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(KeyboardInterrupt):
        convert(
            str(tiny_checkpoint), out_dir / "x.gguf", target="q8_0", jobs=2, on_progress=interrupt
        )
    assert list(out_dir.iterdir()) == []


def test_metadata_overrides_are_typed_and_replace_defaults(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    meta_file = tmp_path / "meta.json"
    meta_file.write_text(
        '{"general.license": "mit", "custom.ids": {"type": "array:u32", "value": [1, 2]}}'
    )
    out = tmp_path / "out.gguf"
    convert(
        str(tiny_checkpoint),
        out,
        target="f16",
        jobs=1,
        metadata=["general.name=Tiny Llama", "custom.count:u64=5", "custom.ratio=0.5"],
        metadata_file=meta_file,
    )
    reader = gguf.GGUFReader(out)
    assert field_value(reader, "general.name") == "Tiny Llama"
    assert field_value(reader, "general.license") == "mit"
    assert field_value(reader, "custom.ids") == [1, 2]
    assert reader.fields["custom.count"].types == [gguf.GGUFValueType.UINT64]
    assert reader.fields["custom.ratio"].types == [gguf.GGUFValueType.FLOAT32]
    keys = list(reader.fields)
    assert keys.index("general.name") < keys.index("general.file_type")  # replaced in place


def test_unknown_type_lists_the_choices(tiny_checkpoint: Path) -> None:
    with pytest.raises(UsageError, match="unknown --type 'q3_0'.*q8_0"):
        plan_conversion(str(tiny_checkpoint), target="q3_0")


def test_a_big_tensor_is_read_in_2_mib_row_chunks(tmp_path: Path) -> None:
    """Memory stays flat because a 16 MiB tensor is read as eight 2 MiB chunks of whole rows."""
    model = tmp_path / "big.safetensors"
    write_safetensors(model, {"big.weight": ("F32", np.ones((1024, 4096), dtype=np.float32))})
    from qconv.pipeline import _chunks

    plans = plan_conversion(str(model), target="q8_0", arch="generic").plans
    chunks = _chunks(plans)
    assert len(chunks) == 8 and all(stop - start == 128 for _, start, stop, _, _ in chunks)
    assert all((first, end) == (0, 4096) for *_, first, end in chunks)


@pytest.mark.parametrize(("target", "block"), [("q8_0", 32), ("f16", 1)])
def test_a_row_longer_than_a_chunk_streams_in_pieces_of_whole_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, block: int
) -> None:
    """A 1 × 50,000,000 tensor must not be read whole: its row is cut between blocks."""
    from qconv import pipeline as convert_module
    from qconv.plan.plan import TensorPlan

    class _LongRow:  # only its shape matters for the chunk plan
        name, dtype, shape = "long.weight", "F32", (1, 50_000_000)

    plan = TensorPlan("long.weight", _LongRow(), GGMLType[target.upper()], "")  # type: ignore[arg-type]
    chunks = convert_module._chunks([plan])
    budget = convert_module.CHUNK_BYTES // 4
    assert all((index, start, stop) == (0, 0, 1) for index, start, stop, _, _ in chunks)
    assert [(a, b) for *_, a, b in chunks] == [
        (col, min(col + budget // block * block, 50_000_000))
        for col in range(0, 50_000_000, budget // block * block)
    ]
    assert all(a % block == 0 and b - a <= budget for *_, a, b in chunks)
    # With an importance matrix ggml weighs every block by its whole row's mean square
    # (ggml-quants.c: sigma2 = sum_x2/n_per_row), so such rows stay whole.
    _LongRow.shape = (2, 3_000_000)
    weighted = TensorPlan(
        "long.weight",
        _LongRow(),  # type: ignore[arg-type]
        GGMLType[target.upper()],
        "",
        importance=np.ones((1, 3_000_000), np.float32),
    )
    assert convert_module._chunks([weighted]) == [(0, 0, 1, 0, 3_000_000), (0, 1, 2, 0, 3_000_000)]

    # Pieces quantize to the same bytes as the whole row, inline and in workers.
    monkeypatch.setattr(convert_module, "CHUNK_BYTES", 4 * 96)
    values = np.random.default_rng(0).standard_normal((3, 1000)).astype(np.float32)
    model = tmp_path / "long.safetensors"
    write_safetensors(model, {"long.weight": ("F32", values[:, :992])})
    for jobs in (1, 2):
        convert(str(model), tmp_path / f"p{jobs}.gguf", target=target, jobs=jobs, arch="generic")
    monkeypatch.setattr(convert_module, "CHUNK_BYTES", 8 * 1024 * 1024)
    convert(str(model), tmp_path / "whole.gguf", target=target, jobs=1, arch="generic")
    whole = (tmp_path / "whole.gguf").read_bytes()
    assert (tmp_path / "p1.gguf").read_bytes() == whole
    assert (tmp_path / "p2.gguf").read_bytes() == whole


def test_qconv_reader_reads_back_exactly_what_the_writer_planned(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from qconv.gguf.reader import read_gguf, tensor_data

    out = tmp_path / "out.gguf"
    report = convert(str(tiny_checkpoint), out, target="q4_0", jobs=1, metadata=["x.flag=true"])
    parsed = read_gguf(out)

    def stored(kv: KV) -> KV:  # FLOAT32 values come back as the float32 the file holds
        if kv.vtype == GGUFValueType.FLOAT32:
            return KV(kv.key, kv.vtype, float(np.float32(kv.value)))
        return kv

    def as_lists(kv: KV) -> KV:  # the reader's arrays are NumPy views of the file
        if isinstance(kv.value, np.ndarray):
            return KV(kv.key, kv.vtype, kv.value.tolist(), kv.item_type)
        return kv

    assert [as_lists(kv) for kv in parsed.kvs] == [stored(kv) for kv in report.conversion.kvs]
    assert [(t.name, t.shape, t.qtype, t.nbytes) for t in parsed.tensors] == [
        (p.name, p.shape, p.qtype, p.nbytes) for p in report.conversion.plans
    ]
    from qconv import quant

    plan = report.conversion.plans[3]
    rows = plan.data.read_rows(0, plan.shape[0])
    assert np.array_equal(tensor_data(parsed, parsed.tensors[3]), quant.quantize(rows, plan.qtype))


def test_overlong_tensor_name_fails_at_planning_with_no_output(tmp_path: Path) -> None:
    model = tmp_path / "long.safetensors"
    write_safetensors(model, {"x" * 70 + ".weight": ("F32", np.ones((2, 32), dtype=np.float32))})
    with pytest.raises(FormatError, match="long.safetensors: .* 77 bytes; GGUF allows at most 63"):
        plan_conversion(str(model), target="q8_0", arch="generic")


def test_checkpoint_faults_name_the_file_instead_of_being_usage_errors(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    five_d = tmp_path / "five.safetensors"
    write_safetensors(five_d, {"w.weight": ("F32", np.ones((1, 1, 1, 2, 32), dtype=np.float32))})
    with pytest.raises(FormatError, match="five.safetensors: tensor 'w.weight' has 5 dimensions"):
        plan_conversion(str(five_d), arch="generic")
    # layer numbers are read as integers, so layers "1" and "01" are both blk.1
    model = tiny_checkpoint
    header = read_safetensors_header(model / "model.safetensors")
    tensors = {r.name: (r.dtype, r.read_rows(0, r.n_rows).reshape(r.shape)) for r in header}
    tensors["model.layers.01.input_layernorm.weight"] = tensors[
        "model.layers.1.input_layernorm.weight"
    ]
    write_safetensors(model / "model.safetensors", tensors)
    with pytest.raises(
        FormatError, match="model.safetensors: tensors .* both map to 'blk.1.attn_norm.weight'"
    ):
        plan_conversion(str(model))


def test_many_fallbacks_are_summarized_in_one_warning(tmp_path: Path) -> None:
    model = tmp_path / "odd.safetensors"
    tensors = {
        f"w{i}.weight": ("F32", np.ones((2, 48 if i % 2 else 40), dtype=np.float32))
        for i in range(6)
    }
    write_safetensors(model, tensors)
    conversion = plan_conversion(str(model), target="q8_0", arch="generic")
    fallback_lines = [w for w in conversion.warnings if "fell back" in w]
    assert fallback_lines == [
        "6 of 6 tensors fell back to another type because their row length is not a multiple "
        "of the block size (6 -> F16); --dry-run lists them"
    ]


def test_progress_reports_every_data_byte_once(tiny_checkpoint: Path, tmp_path: Path) -> None:
    seen: list[int] = []
    report = convert(
        str(tiny_checkpoint), tmp_path / "p.gguf", target="q4_0", jobs=2, on_progress=seen.append
    )
    assert sum(seen) == report.conversion.data_bytes
    assert len(seen) == len(report.conversion.plans)  # one chunk per tensor at this size


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "tokenizer.json"])
def test_the_output_may_not_be_one_of_the_inputs_even_with_force(
    tiny_checkpoint: Path, tmp_path: Path, name: str
) -> None:
    victim = tiny_checkpoint / name
    before = victim.read_bytes()
    link = tmp_path / "alias.gguf"
    os.link(victim, link)  # the same inode under another name counts too
    for output in (victim, link):
        with pytest.raises(OutputError, match=f"is an input of this conversion .*{name}"):
            convert(str(tiny_checkpoint), output, target="q8_0", force=True, jobs=1)
    assert victim.read_bytes() == before


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_input_truncated_during_conversion_is_a_format_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    monkeypatch.setattr("qconv.pipeline.CHUNK_BYTES", 4 * 1024)
    model = tmp_path / "m.safetensors"
    write_safetensors(model, {"w.weight": ("F32", np.ones((64, 256), dtype=np.float32))})
    out = tmp_path / "out" / "m.gguf"
    out.parent.mkdir()

    def truncate(nbytes: int) -> None:
        with model.open("r+b") as f:
            f.truncate(model.stat().st_size // 2)

    with pytest.raises(FormatError, match="m.safetensors: the file shrank to"):
        convert(str(model), out, target="q8_0", jobs=jobs, arch="generic", on_progress=truncate)
    assert list(out.parent.iterdir()) == []


def test_too_many_jobs_is_a_usage_error() -> None:
    from qconv.options import ConvertOptions
    from qconv.pipeline import write_conversion
    from qconv.workers import max_jobs

    for jobs in (0, max_jobs() + 1, 2**62):
        with pytest.raises(UsageError, match="--jobs .*: give 1 to"):
            write_conversion(None, io.BytesIO(), ConvertOptions(jobs=jobs))  # type: ignore[arg-type]


def test_metadata_file_takes_llama_cpp_override_keys_in_llama_cpp_slots(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """convert_hf_to_gguf --metadata keys (tests/test_card_goldens.py proves their values against
    gguf-py) land in llama.cpp's order and types; a typed entry stays qconv's plain KV."""
    meta_file = tmp_path / "meta.json"
    meta_file.write_text(
        '{"general.sampling.top_k": 40, "general.author": "Jane",'
        ' "general.base_models": [{"name": "Base", "repo_url": "https://x.org"}],'
        ' "general.sampling.temp": {"type": "f64", "value": 0.5}}'
    )
    conversion = plan_conversion(str(tiny_checkpoint), target="f16", metadata_file=meta_file)
    kvs = {kv.key: kv for kv in conversion.kvs}
    keys = list(kvs)
    assert kvs["general.sampling.top_k"] == KV("general.sampling.top_k", GGUFValueType.INT32, 40)
    assert keys.index("general.sampling.top_k") < keys.index("general.name")
    assert (
        keys.index("general.name") < keys.index("general.author") < keys.index("general.size_label")
    )
    assert kvs["general.base_model.0.repo_url"].value == "https://x.org"
    assert kvs["general.sampling.temp"].vtype == GGUFValueType.FLOAT64
    assert keys[-1] == "general.sampling.temp"  # not a llama.cpp form: set on top, at the end


def test_llama_cpp_override_values_of_the_wrong_kind_are_usage_errors(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    meta_file = tmp_path / "meta.json"
    meta_file.write_text('{"general.sampling.top_k": 0.5}')
    with pytest.raises(UsageError, match="general.sampling.top_k must be an int32"):
        plan_conversion(str(tiny_checkpoint), target="f16", metadata_file=meta_file)
    meta_file.write_text('{"general.tags": "chat"}')
    with pytest.raises(UsageError, match="general.tags must be a list of strings"):
        plan_conversion(str(tiny_checkpoint), target="f16", metadata_file=meta_file)
