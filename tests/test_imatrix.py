"""qconv.imatrix reads llama-imatrix's two layouts as llama-quantize does, and refuses bad files.

Files here are built byte by byte (the GGUF one with the conftest builder), so each test states the
exact layout it feeds in; tests/test_pipeline_imatrix_goldens.py reads files llama-imatrix itself
wrote. The arithmetic mirrored is tools/quantize/quantize.cpp load_imatrix: in_sum2 / count per
expert (1.0 for a zero count) for GGUF, value / ncall for the legacy layout, both in float32.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from qconv.errors import FormatError, SourceError
from qconv.gguf.constants import GGUFValueType
from qconv.imatrix import Imatrix, imatrix_kvs, importance_for, read_imatrix

F32, U32, STRING, ARRAY = 0, 4, 8, 9


def legacy_bytes(
    entries: Sequence[tuple[str, int, Sequence[float]]],
    trailer: tuple[int, str] | None = None,
) -> bytes:
    """tools/imatrix/imatrix.cpp save_imatrix_legacy's layout."""
    out = struct.pack("<i", len(entries))
    for name, ncall, values in entries:
        raw = name.encode()
        out += struct.pack("<i", len(raw)) + raw + struct.pack("<ii", ncall, len(values))
        out += np.asarray(values, dtype="<f4").tobytes()
    if trailer is not None:
        chunks, dataset = trailer
        out += struct.pack("<ii", chunks, len(dataset.encode())) + dataset.encode()
    return out


def gguf_imatrix_bytes(
    gguf_bytes,
    entries: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    datasets: Sequence[str] = ("corpus.txt",),
    chunk_count: int = 3,
    kind: str | None = "imatrix",
) -> bytes:
    """save_imatrix's layout: <name>.in_sum2 [ne0, n_mat] and <name>.counts [1, n_mat], F32."""
    kvs = [] if kind is None else [("general.type", STRING, kind)]
    kvs += [
        ("imatrix.datasets", ARRAY, (STRING, list(datasets))),
        ("imatrix.chunk_count", U32, chunk_count),
        ("imatrix.chunk_size", U32, 512),
    ]
    tensors, data = [], b""
    for name, (sums, counts) in entries.items():
        for suffix, array in ((".in_sum2", sums), (".counts", counts)):
            tensors.append((name + suffix, array.shape, F32))
            raw = np.asarray(array, dtype="<f4").tobytes()
            data += raw + b"\0" * (-len(raw) % 32)
    return gguf_bytes(kvs, tensors, data=data)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_gguf_importance_is_sum_over_count_per_expert_and_one_without_data(
    tmp_path: Path, gguf_bytes
) -> None:
    sums = np.array([[3.0, 6.0, 9.0], [1.0, 2.0, 4.0], [5.0, 5.0, 5.0]], np.float32)
    counts = np.array([[3.0], [7.0], [0.0]], np.float32)  # expert 2 never routed
    path = write(
        tmp_path, "i.gguf", gguf_imatrix_bytes(gguf_bytes, {"blk.0.x.weight": (sums, counts)})
    )
    imatrix = read_imatrix(path)
    want = np.concatenate([sums[0] / np.float32(3), sums[1] / np.float32(7), [1, 1, 1]])
    assert imatrix.entries["blk.0.x.weight"].dtype == np.float32
    assert np.array_equal(imatrix.entries["blk.0.x.weight"], want.astype(np.float32))
    assert (imatrix.datasets, imatrix.chunk_count, imatrix.legacy) == (("corpus.txt",), 3, False)


def test_legacy_importance_divides_by_ncall_and_reads_the_trailer(tmp_path: Path) -> None:
    data = legacy_bytes(
        [("blk.0.b.weight", 4, [2.0, 8.0]), ("blk.0.a.weight", 0, [1.5, 2.5])], (12, "wiki.txt")
    )
    imatrix = read_imatrix(write(tmp_path, "i.dat", data))
    assert np.array_equal(imatrix.entries["blk.0.b.weight"], np.float32([0.5, 2.0]))
    assert np.array_equal(imatrix.entries["blk.0.a.weight"], np.float32([1.5, 2.5]))  # ncall 0
    assert (imatrix.datasets, imatrix.chunk_count, imatrix.legacy) == (("wiki.txt",), 12, True)


def test_legacy_trailer_is_optional(tmp_path: Path) -> None:
    imatrix = read_imatrix(write(tmp_path, "i.dat", legacy_bytes([("blk.0.a.weight", 1, [1.0])])))
    assert (imatrix.datasets, imatrix.chunk_count) == ((), 0)


def kv_summary(imatrix: Imatrix) -> list[tuple[str, GGUFValueType, object]]:
    return [(kv.key, kv.vtype, kv.value) for kv in imatrix_kvs(imatrix)]


def test_quantize_keys_are_written_in_llama_quantizes_order_with_127_byte_strings() -> None:
    entries = {"a": np.ones(1, np.float32), "b": np.ones(1, np.float32)}
    long = "d" * 200
    imatrix = Imatrix("./" + "p" * 130, entries, (long, "second"), 7, False)
    assert kv_summary(imatrix) == [
        ("quantize.imatrix.file", GGUFValueType.STRING, ("./" + "p" * 130)[:127]),
        ("quantize.imatrix.dataset", GGUFValueType.STRING, "d" * 127),
        ("quantize.imatrix.entries_count", GGUFValueType.UINT32, 2),
        ("quantize.imatrix.chunks_count", GGUFValueType.UINT32, 7),
    ]


def test_dataset_and_chunk_keys_are_left_out_when_the_imatrix_has_none() -> None:
    imatrix = Imatrix("i.dat", {"a": np.ones(1, np.float32)}, (), 0, True)
    assert [key for key, _, _ in kv_summary(imatrix)] == [
        "quantize.imatrix.file",
        "quantize.imatrix.entries_count",
    ]


def imatrix_of(entries: dict[str, list[float]]) -> Imatrix:
    return Imatrix("m.gguf", {k: np.float32(v) for k, v in entries.items()}, (), 0, False)


def test_expert_tensors_get_one_importance_row_per_expert() -> None:
    imatrix = imatrix_of({"blk.0.ffn_up_exps.weight": [1, 2, 3, 4, 5, 6]})
    got = importance_for(imatrix, "blk.0.ffn_up_exps.weight", (2, 8, 3))
    assert got is not None and got.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_tensors_outside_the_blocks_go_without_an_entry_as_in_llama_quantize() -> None:
    imatrix = imatrix_of({"blk.0.attn_q.weight": [1.0] * 4})
    assert importance_for(imatrix, "output.weight", (8, 4)) is None
    assert importance_for(imatrix, "token_embd.weight", (8, 4)) is None


def test_token_embd_of_another_size_is_quietly_unweighted_as_in_llama_quantize() -> None:
    imatrix = imatrix_of({"token_embd.weight": [1.0] * 3})
    assert importance_for(imatrix, "token_embd.weight", (8, 4)) is None


@pytest.mark.parametrize(
    ("entries", "shape", "message"),
    [
        ({"blk.0.attn_k.weight": [1.0] * 4}, (8, 4), "no importances for tensor 'blk.0.attn_q"),
        ({"blk.0.attn_q.weight": [1.0] * 5}, (8, 4), r"needs 1 × 4 importances, .* has 5"),
        ({"blk.0.attn_q.weight": [1.0] * 4}, (2, 8, 4), r"needs 2 × 4"),
    ],
)
def test_an_imatrix_for_another_model_is_a_source_error(
    entries: dict[str, list[float]], shape: tuple[int, ...], message: str
) -> None:
    with pytest.raises(SourceError, match=message):
        importance_for(imatrix_of(entries), "blk.0.attn_q.weight", shape)


def test_a_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        read_imatrix(tmp_path / "nope.gguf")


def test_a_gguf_model_is_not_an_imatrix(tmp_path: Path, gguf_bytes) -> None:
    data = gguf_bytes([("general.architecture", STRING, "llama")], [("w", (2, 32), F32)])
    with pytest.raises(FormatError, match="not an importance matrix"):
        read_imatrix(write(tmp_path, "model.gguf", data))


def test_a_gguf_of_another_general_type_is_not_an_imatrix(tmp_path: Path, gguf_bytes) -> None:
    entry = {"blk.0.a.weight": (np.ones((1, 4), np.float32), np.ones((1, 1), np.float32))}
    data = gguf_imatrix_bytes(gguf_bytes, entry, kind="model")
    with pytest.raises(FormatError, match="general.type 'model'"):
        read_imatrix(write(tmp_path, "i.gguf", data))


def test_sums_without_counts_are_refused(tmp_path: Path, gguf_bytes) -> None:
    kvs = [
        ("imatrix.datasets", ARRAY, (STRING, [])),
        ("imatrix.chunk_count", U32, 1),
        ("imatrix.chunk_size", U32, 512),
    ]
    data = gguf_bytes(kvs, [("blk.0.a.weight.in_sum2", (1, 8), F32)])
    with pytest.raises(FormatError, match="in_sum2 or counts, not both"):
        read_imatrix(write(tmp_path, "i.gguf", data))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated"),
        (b"\x00\x00\x00\x00", "claims 0 entries"),
        (b"not an imatrix at all, just some text\n" * 4, "not an imatrix"),
        (legacy_bytes([("blk.0.a.weight", 1, [1.0, 2.0])])[:-3], "truncated"),
        (legacy_bytes([("blk.0.a.weight", 1, [1.0])], (5, "corpus.txt"))[:-4], "truncated"),
        (legacy_bytes([("blk.0.a.weight", 1, [])]), "has 0 values"),
    ],
    ids=["empty", "zero-entries", "text", "cut-values", "cut-trailer", "no-values"],
)
def test_broken_legacy_files_are_format_errors(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        read_imatrix(write(tmp_path, "i.dat", data))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_importances_are_refused_naming_the_entry(tmp_path: Path, bad: float) -> None:
    data = legacy_bytes([("blk.1.ffn_down.weight", 1, [1.0, bad])])
    with pytest.raises(FormatError, match=r"'blk.1.ffn_down.weight' holds .* at index 1"):
        read_imatrix(write(tmp_path, "i.dat", data))
