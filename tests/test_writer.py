"""The GGUF writer: exact header bytes, layout, writer-state checks and atomic output."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest

from qconv.errors import OutputError, UsageError
from qconv.format import GGMLType, GGUFValueType
from qconv.metadata import KV, kv_array, kv_string, kv_uint32
from qconv.writer import GGUFWriter, atomic_output, encode_header, layout


def test_header_bytes_are_exactly_as_gguf_specifies() -> None:
    infos = layout([("w", (2, 32), GGMLType.F16)], 32)
    header = encode_header([kv_uint32("a", 7)], infos, 32)
    expected = (
        b"GGUF"
        + struct.pack("<IQQ", 3, 1, 1)
        + struct.pack("<Q", 1) + b"a" + struct.pack("<II", 4, 7)
        + struct.pack("<Q", 1) + b"w" + struct.pack("<IQQ", 2, 32, 2)  # ne reversed: [32, 2]
        + struct.pack("<IQ", 1, 0)
    )  # fmt: skip
    assert header == expected + bytes(-len(expected) % 32)


def test_arrays_of_strings_and_numbers_are_length_prefixed() -> None:
    header = encode_header(
        [
            kv_array("s", ["ab", ""], GGUFValueType.STRING),
            kv_array("f", [1.5], GGUFValueType.FLOAT32),
        ],
        [],
        32,
    )
    body = header[24:]
    assert body.startswith(struct.pack("<Q", 1) + b"s" + struct.pack("<IIQ", 9, 8, 2))
    assert struct.pack("<Q", 2) + b"ab" + struct.pack("<Q", 0) in body
    assert struct.pack("<IIQf", 9, 6, 1, 1.5) in body


def test_layout_pads_every_tensor_to_the_alignment() -> None:
    infos = layout(
        [("a", (1, 3), GGMLType.F32), ("b", (32,), GGMLType.Q8_0), ("c", (4,), GGMLType.F32)], 32
    )
    assert [(i.offset, i.nbytes) for i in infos] == [(0, 12), (32, 34), (96, 16)]


def test_writer_streams_tensors_with_padding_and_checks_sizes() -> None:
    infos = layout([("a", (3,), GGMLType.F32), ("b", (2,), GGMLType.F16)], 32)
    stream = io.BytesIO()
    writer = GGUFWriter(stream)
    writer.begin([kv_string("general.architecture", "x")], infos)
    start = stream.tell()
    writer.write(np.array([1, 2, 3], dtype="<f4").view(np.uint8))
    writer.end_tensor()
    writer.write(np.array([1, 2], dtype="<f2").view(np.uint8))
    writer.end_tensor()
    writer.close()
    data = stream.getvalue()[start:]
    assert len(data) == 64 and data[12:32] == bytes(20) and data[36:] == bytes(28)


def test_writer_rejects_short_tensors_and_out_of_order_calls() -> None:
    writer = GGUFWriter(io.BytesIO())
    with pytest.raises(RuntimeError, match="expected writer state"):
        writer.write(b"x")
    writer.begin([], layout([("a", (4,), GGMLType.F32)], 32))
    writer.write(b"\0" * 8)
    with pytest.raises(RuntimeError, match="wrote 8 of 16"):
        writer.end_tensor()
    with pytest.raises(RuntimeError, match="more bytes than planned"):
        writer.write(b"\0" * 9)


@pytest.mark.parametrize(
    ("kvs", "tensors", "message"),
    [
        ([], [("x" * 64, (4,), GGMLType.F32)], "64 bytes; GGUF allows at most 63"),
        ([], [("a", (1, 1, 1, 1, 4), GGMLType.F32)], "5 dims"),
        ([], [("a", (4,), GGMLType.F32), ("a", (4,), GGMLType.F32)], "duplicate tensor names"),
        ([kv_uint32("k", 1), kv_uint32("k", 2)], [], "duplicate metadata keys"),
        ([KV("k", GGUFValueType.UINT8, 300)], [], "not a UINT8"),
    ],
)
def test_invalid_headers_are_refused_before_writing(
    kvs: list[KV], tensors: list[tuple[str, tuple[int, ...], GGMLType]], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        encode_header(kvs, layout(tensors, 32), 32)


def test_custom_alignment_is_used_for_padding() -> None:
    stream = io.BytesIO()
    writer = GGUFWriter(stream)
    kvs = [kv_uint32("general.alignment", 64)]
    writer.begin(kvs, layout([("a", (4,), GGMLType.F32)], 64))
    assert stream.tell() % 64 == 0
    with pytest.raises(UsageError, match="power of two"):
        GGUFWriter(io.BytesIO()).begin([kv_uint32("general.alignment", 48)], [])


def test_atomic_output_renames_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "m.gguf"
    with pytest.raises(ValueError), atomic_output(out, force=False) as stream:
        stream.write(b"partial")
        raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(out, force=False) as stream:
        stream.write(b"whole")
    assert out.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [out]


def test_atomic_output_refuses_existing_file_and_folders(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"old")
    with pytest.raises(OutputError, match="already exists; pass --force"):
        with atomic_output(tmp_path / "m.gguf", force=False):
            pass
    with pytest.raises(OutputError, match="is a folder"), atomic_output(tmp_path, force=True):
        pass
    with pytest.raises(OutputError, match="cannot create"):
        with atomic_output(tmp_path / "missing-dir" / "m.gguf", force=False):
            pass
