"""Opening sources: safetensors headers, folders, shard indexes, the hub cache, and bad input."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synthetic import to_bf16_bits, write_safetensors

from qconv.errors import FormatError, SourceError
from qconv.model.transforms import PermutedTensor
from qconv.source import open_source, read_safetensors_header


def test_header_entries_become_sorted_refs_with_absolute_offsets(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    b = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_safetensors(path, {"z.weight": ("F32", b), "a.weight": ("F16", b)})
    refs = read_safetensors_header(path)
    assert [r.name for r in refs] == ["a.weight", "z.weight"]
    (header_len,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert refs[1].offset == 8 + header_len and refs[1].nbytes == 24
    assert refs[0].offset == 8 + header_len + 24 and refs[0].dtype == "F16"
    assert np.array_equal(refs[1].read_rows(0, 2), b)
    assert np.array_equal(refs[0].read_rows(1, 2), b[1:])


def test_bf16_rows_widen_bit_exactly(tmp_path: Path, rng: np.random.Generator) -> None:
    values = rng.standard_normal((5, 64)).astype(np.float32) * 1e3
    path = tmp_path / "m.safetensors"
    write_safetensors(path, {"w": ("BF16", values)})
    (ref,) = read_safetensors_header(path)
    expected = (to_bf16_bits(values).astype(np.uint32) << 16).view(np.float32)
    assert np.array_equal(ref.read_rows(0, 5), expected)
    assert np.array_equal(ref.read_rows(2, 4), expected[2:4])


def test_every_tensor_view_reads_part_of_a_row_as_its_whole_rows_would(tmp_path: Path) -> None:
    """read_row_part is how a row longer than a chunk streams; it must agree with read_rows."""
    from qconv.model.transforms import GeneratedTensor, RowSlice, ShiftedTensor, StackedTensor

    values = np.random.default_rng(0).standard_normal((2, 6, 64)).astype(np.float32)
    path = tmp_path / "m.safetensors"
    write_safetensors(path, {"a": ("BF16", values[0]), "b": ("F32", values[1])})
    a, b = read_safetensors_header(path)
    views = [
        a,
        b,
        PermutedTensor(b, np.array([5, 4, 3, 2, 1, 0]), "p"),
        GeneratedTensor("g", values[1]),
        StackedTensor("s", (a, b)),
        RowSlice("r", StackedTensor("s", (a, b)), 2, 3),
        ShiftedTensor("h", b),
    ]
    for view in views:
        n_rows = int(np.prod(view.shape[:-1]))
        whole = view.read_rows(0, n_rows)
        for row in range(n_rows):
            for first, end in ((0, 64), (0, 32), (32, 64), (8, 40)):
                part = view.read_row_part(row, first, end)
                assert part.shape == (1, end - first)
                assert np.array_equal(part, whole[row : row + 1, first:end]), (view, row, first)


def test_permuted_tensor_reads_rows_in_the_given_order(tmp_path: Path) -> None:
    values = np.arange(40, dtype=np.float32).reshape(8, 5)
    path = tmp_path / "m.safetensors"
    write_safetensors(path, {"w": ("F32", values)})
    (ref,) = read_safetensors_header(path)
    order = np.array([1, 0, 3, 2, 5, 4, 7, 6])
    permuted = PermutedTensor(ref, order, "w")
    assert np.array_equal(permuted.read_rows(0, 8), values[order])
    assert np.array_equal(permuted.read_rows(2, 5), values[order[2:5]])


def _raw_file(
    path: Path, header: bytes | dict, data: bytes = b"", length: int | None = None
) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


_F = b'{"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}'
F = _F.decode()


@pytest.mark.parametrize(
    ("header", "data", "length", "message"),
    [
        (b"", b"", None, "too short|not valid JSON"),
        (b"{not json", b"", None, "not valid JSON"),
        (b"[1, 2]", b"", None, "not a JSON object"),
        (
            {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
            b"\0" * 4,
            None,
            "past the end",
        ),
        (
            {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
            b"\0" * 8,
            None,
            "needs 12",
        ),
        (
            {"w": {"dtype": "Q9", "shape": [2], "data_offsets": [0, 8]}},
            b"\0" * 8,
            None,
            "unknown dtype",
        ),
        ({"w": {"shape": [2]}}, b"", None, "malformed"),
        ({}, b"", 10**12, "over the 100 MiB"),
        ({}, b"", 1000, "exceeds the file"),
        # What the safetensors library rejects (Metadata::validate and its serde types):
        ({"w": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}}, b"\0" * 8, None, "shape"),
        ({"w": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}, b"\0" * 8, None, "shape"),
        ({"w": {"dtype": "U8", "shape": [True], "data_offsets": [0, 1]}}, b"\0", None, "shape"),
        (
            {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8.0]}},
            b"\0" * 8,
            None,
            "offsets",
        ),
        (
            {"w": {"dtype": "F32", "shape": [2], "data_offsets": ["0", 8]}},
            b"\0" * 8,
            None,
            "offsets",
        ),
        (
            {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 8]}},
            b"\0" * 8,
            None,
            "offsets",
        ),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            },
            b"\0" * 8,
            None,
            "overlaps",
        ),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, None, "gap"),
        (
            {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
            b"\0" * 12,
            None,
            "4 bytes after",
        ),
        (
            b'{"w": %s, "w": %s}' % (_F, _F),
            b"\0" * 8,
            None,
            "duplicate key 'w'",
        ),
        ({"__metadata__": {"x": 1}, "w": json.loads(F)}, b"\0" * 8, None, "__metadata__"),
        ({"__metadata__": "x", "w": json.loads(F)}, b"\0" * 8, None, "__metadata__"),
        (b'{"\\ud800": %s}' % _F, b"\0" * 8, None, "not valid UTF-8"),
        (b'{"w": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 8]}}', b"", None, "NaN"),
        (b"[" * 100_000 + b"]" * 100_000, b"", None, "nested too deeply"),
    ],
)
def test_corrupt_headers_raise_format_errors_naming_the_file(
    tmp_path: Path, header: bytes | dict, data: bytes, length: int | None, message: str
) -> None:
    path = _raw_file(tmp_path / "bad.safetensors", header, data, length)
    with pytest.raises(FormatError, match=message) as info:
        read_safetensors_header(path)
    assert "bad.safetensors" in str(info.value)


def test_shards_come_from_the_index_not_a_glob(sharded_checkpoint: Path) -> None:
    (sharded_checkpoint / "model-99999-of-99999.safetensors").write_bytes(b"junk")
    source = open_source(str(sharded_checkpoint))
    assert [f.name for f in source.files] == [
        f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)
    ]
    assert source.config["model_type"] == "llama"
    assert source.name == "tiny-llama-sharded"


def test_missing_shard_is_a_source_error(sharded_checkpoint: Path) -> None:
    (sharded_checkpoint / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(SourceError, match="model-00002-of-00003.safetensors: listed in .* missing"):
        open_source(str(sharded_checkpoint))


def test_index_entry_absent_from_its_shard_is_a_source_error(sharded_checkpoint: Path) -> None:
    index_path = sharded_checkpoint / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"]["model.extra.weight"] = "model-00001-of-00003.safetensors"
    index_path.write_text(json.dumps(index))
    with pytest.raises(SourceError, match="'model.extra.weight'.*not in any shard"):
        open_source(str(sharded_checkpoint))


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"pytorch_model.bin": b"x"}, "pickle checkpoints are not supported"),
        ({"notes.txt": b"x"}, "no model.safetensors or model.safetensors.index.json"),
    ],
)
def test_folders_without_safetensors_explain_what_is_needed(
    tmp_path: Path, files: dict[str, bytes], message: str
) -> None:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(SourceError, match=message):
        open_source(str(tmp_path))


def test_pickle_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(SourceError, match="model.pt: PyTorch pickle"):
        open_source(str(tmp_path / "model.pt"))


def test_nonexistent_path_that_is_not_a_repo_id(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(str(tmp_path / "nope"))


def test_repo_id_resolves_from_the_offline_hub_cache(hub_cache: Path) -> None:
    source = open_source("qconv-test/tiny-llama")
    assert source.name == "tiny-llama"
    assert source.root is not None and source.root.parent.name == "snapshots"
    assert len(source.tensors) == 2 + 2 * 9 + 1


def test_repo_id_missing_from_an_offline_cache_says_what_to_do(hub_cache: Path) -> None:
    with pytest.raises(SourceError, match="not in the local Hugging Face cache.*HF_HUB_OFFLINE"):
        open_source("qconv-test/absent-model")


def test_hub_download_is_restricted_to_needed_files(
    monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path
) -> None:
    calls = {}

    def fake_snapshot_download(repo_id: str, **kwargs: object) -> str:
        calls.update(kwargs, repo_id=repo_id)
        return str(tiny_checkpoint)

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    open_source("org/model", revision="v1.0")
    assert calls["repo_id"] == "org/model" and calls["revision"] == "v1.0"
    patterns = calls["allow_patterns"]
    assert "*.safetensors" in patterns and "*.json" in patterns and "tokenizer.model" in patterns
    assert not any(p.endswith((".bin", ".pt")) for p in patterns)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2, "U8": 1, "I64": 8}


@st.composite
def _headers(draw: st.DrawFn) -> tuple[dict, bytes]:
    """A valid header and data section, then at most a couple of hostile edits."""
    names = draw(st.lists(st.text(max_size=4), unique=True, max_size=4))
    header: dict = {}
    offset = 0
    for name in draw(st.permutations(names)):
        dtype = draw(st.sampled_from(sorted(_ITEMSIZE)))
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
        nbytes = _ITEMSIZE[dtype] * int(np.prod(shape, dtype=np.int64))
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.dictionaries(st.text(max_size=3), st.text(max_size=3)))
    data = bytes(offset)
    for _ in range(draw(st.integers(0, 2))):
        edit = draw(st.sampled_from(["value", "offset", "data", "meta", "junk"]))
        entries = [k for k, v in header.items() if k != "__metadata__" and "dtype" in str(v)]
        if edit == "data":
            data = data[: draw(st.integers(0, len(data)))] + draw(st.binary(max_size=3))
        elif edit == "meta":
            header["__metadata__"] = draw(_JSON)
        elif edit == "junk":
            header[draw(st.text(max_size=4))] = draw(_JSON)
        elif entries:
            entry = header[draw(st.sampled_from(entries))]
            field = "shape" if edit == "value" else "data_offsets"
            if isinstance(entry, dict) and entry.get(field):
                index = draw(st.integers(0, len(entry[field]) - 1))
                entry[field][index] = draw(
                    st.integers(-1, 40) | st.sampled_from([1.0, True, False, "2", None])
                )
    return header, data


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=_headers(), raw=st.none() | st.binary(max_size=64))
def test_any_header_is_parsed_like_the_safetensors_library_or_refused_with_a_format_error(
    tmp_path: Path, case: tuple[dict, bytes], raw: bytes | None
) -> None:
    """The parser raises only FormatError, and accepts exactly what the safetensors library does."""
    from safetensors import safe_open

    header, data = case
    path = _raw_file(tmp_path / "fuzz.safetensors", raw if raw is not None else header, data)
    try:
        refs = read_safetensors_header(path)
    except FormatError:
        refs = None
    try:
        with safe_open(str(path), "np") as f:
            library = sorted(f.keys())
    except Exception:  # the library raises its own SafetensorError (and others) for bad files
        library = None
    assert (None if refs is None else sorted(r.name for r in refs)) == library


def test_a_shard_index_nested_too_deeply_is_a_format_error(sharded_checkpoint: Path) -> None:
    index = sharded_checkpoint / "model.safetensors.index.json"
    index.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FormatError, match="model.safetensors.index.json: .* nested too deeply"):
        open_source(str(sharded_checkpoint))
