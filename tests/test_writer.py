"""The GGUF writer: exact header bytes, layout, writer-state checks and atomic output."""

from __future__ import annotations

import io
import os
import stat
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qconv.errors import OutputError, UsageError
from qconv.gguf.constants import GGMLType, GGUFValueType
from qconv.gguf.metadata import KV, kv_array, kv_string, kv_uint32
from qconv.gguf.writer import GGUFWriter, atomic_output, encode_header, layout


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
        ([KV("general.alignment", GGUFValueType.UINT8, 32)], [], "u32 power of two"),
        ([kv_uint32("general.alignment", 64)], [], "says 64 but the data uses 32"),
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


def test_a_file_that_appears_during_the_run_is_not_replaced_without_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qconv.gguf import writer

    out = tmp_path / "m.gguf"
    for renameat2 in (writer._libc_renameat2, lambda: None):  # renameat2, then link() fallback
        monkeypatch.setattr(writer, "_libc_renameat2", renameat2)
        with pytest.raises(OutputError, match="appeared there during the conversion"):
            with atomic_output(out, force=False) as stream:
                stream.write(b"ours")
                out.write_bytes(b"theirs")  # another run, or the user, got there first
        assert out.read_bytes() == b"theirs" and list(tmp_path.iterdir()) == [out]
        out.unlink()
    with atomic_output(out, force=False) as stream:
        stream.write(b"ours")
        (tmp_path / "other").write_bytes(b"x")
    assert out.read_bytes() == b"ours"
    with atomic_output(out, force=True) as stream:
        stream.write(b"forced")
        out.write_bytes(b"theirs")
    assert out.read_bytes() == b"forced"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o027])
def test_the_output_gets_the_mode_a_new_file_would_get(tmp_path: Path, umask: int) -> None:
    out = tmp_path / "m.gguf"
    out.write_bytes(b"old")
    out.chmod(0o600 if umask == 0o022 else 0o666)
    old_mask = os.umask(umask)
    try:
        with atomic_output(out, force=True) as stream:
            stream.write(b"new")
        fresh = tmp_path / "fresh"
        fresh.write_bytes(b"")
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(fresh.stat().st_mode)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_stale_temporaries_of_dead_runs_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".m.gguf.{dead_pid}.abc_123.partial"
    live = tmp_path / f".m.gguf.{os.getppid()}.xyz.partial"
    unrelated = tmp_path / f".m.gguf.{dead_pid}.partial.keep"
    other_name = tmp_path / f".n.gguf.{dead_pid}.abc.partial"
    for file in (stale, live, unrelated, other_name):
        file.write_bytes(b"x")
    with atomic_output(tmp_path / "m.gguf", force=False) as stream:
        names = sorted(p.name for p in tmp_path.iterdir())
        assert stale.name not in names and live.name in names
        (temp,) = [n for n in names if n.startswith(f".m.gguf.{os.getpid()}.")]
        assert temp.endswith(".partial")
        stream.write(b"ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["m.gguf", live.name, unrelated.name, other_name.name]
    )


class _FullDisk(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise OSError(28, "No space left on device")


def test_a_full_disk_is_an_output_error_naming_the_file() -> None:
    writer = GGUFWriter(_FullDisk(), label="out.gguf")  # type: ignore[arg-type]
    with pytest.raises(OutputError, match="out.gguf: write failed \\(No space left on device\\)"):
        writer.begin([], [])


_SCALARS = {
    GGUFValueType.UINT8: st.integers(0, 2**8 - 1),
    GGUFValueType.INT8: st.integers(-(2**7), 2**7 - 1),
    GGUFValueType.UINT16: st.integers(0, 2**16 - 1),
    GGUFValueType.INT16: st.integers(-(2**15), 2**15 - 1),
    GGUFValueType.UINT32: st.integers(0, 2**32 - 1),
    GGUFValueType.INT32: st.integers(-(2**31), 2**31 - 1),
    GGUFValueType.UINT64: st.integers(0, 2**64 - 1),
    GGUFValueType.INT64: st.integers(-(2**63), 2**63 - 1),
    GGUFValueType.FLOAT32: st.floats(width=32, allow_nan=False),
    GGUFValueType.FLOAT64: st.floats(allow_nan=False),
    GGUFValueType.BOOL: st.booleans(),
    GGUFValueType.STRING: st.text(),
}


@st.composite
def _kvs(draw: st.DrawFn) -> list[KV]:
    # general.alignment is left out: it is a header rule, not free metadata (hypothesis draws it
    # from the source's string constants), and the refusals above cover it.
    key_text = st.text(min_size=1, max_size=20).filter(lambda key: key != "general.alignment")
    keys = draw(st.lists(key_text, unique=True, max_size=6))
    kvs = []
    for key in keys:
        vtype = draw(st.sampled_from([*_SCALARS, GGUFValueType.ARRAY]))
        if vtype == GGUFValueType.ARRAY:
            item_type = draw(st.sampled_from(list(_SCALARS)))
            kvs.append(KV(key, vtype, draw(st.lists(_SCALARS[item_type], max_size=5)), item_type))
        else:
            kvs.append(KV(key, vtype, draw(_SCALARS[vtype])))
    return kvs


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kvs=_kvs())
def test_any_metadata_round_trips_through_writer_and_reader(tmp_path: Path, kvs: list[KV]) -> None:
    from qconv.gguf.reader import read_gguf

    path = tmp_path / "kv.gguf"
    path.write_bytes(encode_header(kvs, [], 32))
    back = [
        KV(kv.key, kv.vtype, kv.value.tolist(), kv.item_type)
        if isinstance(kv.value, np.ndarray)
        else kv
        for kv in read_gguf(path).kvs
    ]
    assert back == kvs


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(st.floats(width=16, allow_nan=False), min_size=1, max_size=64),
    qtype=st.sampled_from([GGMLType.F32, GGMLType.F16]),
)
def test_f32_and_f16_tensors_round_trip_exactly(
    tmp_path: Path, values: list[float], qtype: GGMLType
) -> None:
    from qconv import quant
    from qconv.gguf.reader import read_gguf, tensor_data

    rows = np.array([values], dtype=np.float32)
    infos = layout([("t", rows.shape, qtype)], 32)
    path = tmp_path / "t.gguf"
    with path.open("wb") as stream:
        writer = GGUFWriter(stream)
        writer.begin([], infos)
        writer.write(quant.quantize(rows, qtype))
        writer.end_tensor()
        writer.close()
    parsed = read_gguf(path)
    back = quant.dequantize(np.asarray(tensor_data(parsed, parsed.tensors[0])), qtype, len(values))
    assert np.array_equal(back, rows)
