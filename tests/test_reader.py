"""qconv.gguf.reader: exact-byte parsing, gguf-py cross-checks, hostile files, header-only speed."""

from __future__ import annotations

import contextlib
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qconv.errors import FormatError, SourceError
from qconv.gguf.constants import GGMLType, GGUFValueType
from qconv.gguf.metadata import KV
from qconv.gguf.reader import TensorInfo, read_gguf, tensor_data

V = GGUFValueType


def write(tmp_path, raw: bytes, name: str = "model.gguf"):
    path = tmp_path / name
    path.write_bytes(raw)
    return path


def rewrite(path, raw: bytes) -> None:
    """Replace a file's bytes in place: write_bytes' O_TRUNC makes ext4 flush, 50x slower."""
    path.touch()
    with open(path, "r+b") as f:
        f.write(raw)
        f.truncate(len(raw))


# --- exact bytes -----------------------------------------------------------------------------


def test_empty_gguf_parses_to_header_facts(tmp_path):
    raw = b"GGUF" + struct.pack("<IQQ", 3, 0, 0) + b"\x00" * 8
    gguf = read_gguf(write(tmp_path, raw))
    assert (gguf.version, gguf.alignment, gguf.kvs, gguf.tensors) == (3, 32, [], [])
    assert (gguf.data_offset, gguf.file_size) == (32, 32)


def test_one_kv_one_tensor_parses_from_hand_written_bytes(tmp_path):
    raw = b"GGUF" + struct.pack("<IQQ", 3, 1, 1)
    raw += struct.pack("<Q", 3) + b"key" + struct.pack("<I", 4) + struct.pack("<I", 7)
    raw += struct.pack("<Q", 1) + b"w" + struct.pack("<I2Q", 2, 32, 2)  # ne = [32, 2]
    raw += struct.pack("<IQ", 8, 0)  # Q8_0 at offset 0
    raw += b"\x00" * (-len(raw) % 32)
    data = bytes(range(68))
    gguf = read_gguf(write(tmp_path, raw + data))
    assert gguf.kvs == [KV("key", V.UINT32, 7)]
    assert gguf.tensors == [TensorInfo("w", (2, 32), GGMLType.Q8_0, 0, 68)]
    assert gguf.data_offset == len(raw)
    rows = tensor_data(gguf, gguf.tensors[0])
    assert rows.shape == (2, 34) and rows.dtype == np.uint8
    assert rows.tobytes() == data


SCALARS = [
    (V.UINT8, 255),
    (V.INT8, -128),
    (V.UINT16, 65535),
    (V.INT16, -32768),
    (V.UINT32, 2**32 - 1),
    (V.INT32, -(2**31)),
    (V.FLOAT32, 1.5),
    (V.BOOL, True),
    (V.BOOL, False),
    (V.STRING, "héllo ✓"),
    (V.UINT64, 2**64 - 1),
    (V.INT64, -(2**63)),
    (V.FLOAT64, -2.25e300),
]


@pytest.mark.parametrize(("vtype", "value"), SCALARS, ids=lambda x: str(x))
def test_every_scalar_value_type_reads_back(tmp_path, gguf_bytes, vtype, value):
    gguf = read_gguf(write(tmp_path, gguf_bytes([("k", vtype, value)])))
    assert gguf.kvs == [KV("k", vtype, value)]
    assert type(gguf.kvs[0].value) is type(value)


ARRAYS = [
    (V.UINT8, [0, 1, 255]),
    (V.INT8, [-128, 0, 127]),
    (V.UINT16, [0, 65535]),
    (V.INT16, [-32768, 32767]),
    (V.UINT32, [0, 2**32 - 1]),
    (V.INT32, [-(2**31), 2**31 - 1]),
    (V.FLOAT32, [0.5, -1.25, 3.0]),
    (V.BOOL, [True, False, True]),
    (V.STRING, ["a", "", "ünï"]),
    (V.UINT64, [2**64 - 1]),
    (V.INT64, [-(2**63), 5]),
    (V.FLOAT64, [1e-300, 2.5]),
    (V.INT32, []),
]


@pytest.mark.parametrize(("item_type", "items"), ARRAYS, ids=lambda x: str(x))
def test_arrays_of_every_item_type_read_back_as_views_of_the_file(
    tmp_path, gguf_bytes, item_type, items
):
    """Numbers stay a read-only NumPy view of the mapped file (no item objects); strings a list."""
    gguf = read_gguf(write(tmp_path, gguf_bytes([("arr", V.ARRAY, (item_type, items))])))
    (kv,) = gguf.kvs
    assert (kv.key, kv.vtype, kv.item_type) == ("arr", V.ARRAY, item_type)
    if item_type == V.STRING:
        assert kv.value == items
        return
    assert isinstance(kv.value, np.ndarray) and not kv.value.flags.writeable
    assert kv.value.tolist() == items
    assert all(type(a) is type(b) for a, b in zip(kv.value.tolist(), items, strict=True))
    if item_type != V.BOOL and items:
        assert kv.value.base is not None  # a view, not a copy


def test_any_nonzero_bool_byte_is_true_like_ggml(tmp_path, gguf_bytes):
    raw = _header(0, 2) + gguf_bytes.string("b") + struct.pack("<IB", V.BOOL, 2)
    raw += gguf_bytes.string("a") + struct.pack("<IIQ2B", V.ARRAY, V.BOOL, 2, 0xFF, 0)
    b, a = read_gguf(write(tmp_path, raw)).kvs
    assert b.value is True and a.value.tolist() == [True, False]


def test_invalid_utf8_in_strings_is_replaced_not_fatal(tmp_path, gguf_bytes):
    raw = gguf_bytes([("s", V.STRING, b"a\xffb"), ("t", V.ARRAY, (V.STRING, [b"\xc3"]))])
    assert [kv.value for kv in read_gguf(write(tmp_path, raw)).kvs] == ["a\ufffdb", ["\ufffd"]]


def test_version_2_files_are_read(tmp_path, gguf_bytes):
    raw = gguf_bytes([("k", V.STRING, "v")], [("t", (32,), 0)], version=2)
    gguf = read_gguf(write(tmp_path, raw))
    assert gguf.version == 2 and gguf.tensors[0].nbytes == 128


def test_general_alignment_sets_padding_and_data_offset(tmp_path, gguf_bytes):
    raw = gguf_bytes(
        [("general.alignment", V.UINT32, 256)],
        [("a", (3,), 0), ("b", (2, 32), 8)],
        alignment=256,
    )
    gguf = read_gguf(write(tmp_path, raw))
    assert gguf.alignment == 256 and gguf.data_offset == 256
    assert [(t.offset, t.nbytes) for t in gguf.tensors] == [(0, 12), (256, 68)]


def test_shapes_are_numpy_order_with_gguf_dims_reversed(tmp_path, gguf_bytes):
    raw = gguf_bytes(tensors=[("experts", (4, 3, 256), 12), ("norm", (64,), 0)])
    gguf = read_gguf(write(tmp_path, raw))
    assert [t.shape for t in gguf.tensors] == [(4, 3, 256), (64,)]
    assert tensor_data(gguf, gguf.tensors[0]).shape == (12, 144)


def test_types_qconv_cannot_write_are_still_read(tmp_path, gguf_bytes):
    iq2 = GGMLType.IQ2_XXS.value
    raw = gguf_bytes(tensors=[("t", (2, 256), iq2)], data=b"\x00" * 132)
    tensor = read_gguf(write(tmp_path, raw)).tensors[0]
    assert (tensor.qtype, tensor.nbytes) == (GGMLType.IQ2_XXS, 132)


def test_a_150k_string_vocabulary_parses(tmp_path, gguf_bytes):
    tokens = [f"▁tok{i}" for i in range(150_000)]
    raw = gguf_bytes([("tokenizer.ggml.tokens", V.ARRAY, (V.STRING, tokens))])
    assert read_gguf(write(tmp_path, raw)).kvs[0].value == tokens


def test_header_only_read_of_a_2gb_sparse_file_is_fast(tmp_path, gguf_bytes):
    rows, cols = 32768, 32768  # F16: exactly 2 GiB of tensor data
    path = write(tmp_path, gguf_bytes(tensors=[("big", (rows, cols), 1)], data=b""))
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size + rows * cols * 2)  # sparse: no blocks are written
    start = time.perf_counter()
    gguf = read_gguf(path)
    elapsed = time.perf_counter() - start
    assert gguf.tensors[0].nbytes == 2**31
    assert elapsed < 1.0, f"header-only read took {elapsed:.2f} s"


# --- gguf-py as an oracle ----------------------------------------------------------------------


def _write_with_gguf_py(path, rng):
    gguf_py = pytest.importorskip("gguf")
    q = gguf_py.GGMLQuantizationType
    writer = gguf_py.GGUFWriter(str(path), "llama")
    writer.add_uint32("general.file_type", 15)
    writer.add_float32("llama.rope.freq_base", 10000.0)
    writer.add_bool("flag", True)
    writer.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "hé"])
    writer.add_array("tokenizer.ggml.scores", [0.5, -1.0, 2.0])
    writer.add_tensor("f32", rng.standard_normal((3, 5)).astype(np.float32))
    writer.add_tensor("f16", rng.standard_normal((7,)).astype(np.float16))
    for name, qtype, shape, block in [
        ("q8_0", q.Q8_0, (4, 64), (32, 34)),
        ("q4_0", q.Q4_0, (2, 32), (32, 18)),
        ("q4_k", q.Q4_K, (3, 512), (256, 144)),
        ("q6_k", q.Q6_K, (2, 256), (256, 210)),
        ("bf16", q.BF16, (2, 3), (1, 2)),
    ]:
        nbytes = shape[-1] // block[0] * block[1]
        raw = rng.integers(0, 256, (*shape[:-1], nbytes), dtype=np.uint8)
        writer.add_tensor(name, raw, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return gguf_py.GGUFReader(str(path))


def test_files_written_by_gguf_py_match_gguf_py_reader(tmp_path):
    path = tmp_path / "oracle.gguf"
    oracle = _write_with_gguf_py(path, np.random.default_rng(0))
    gguf = read_gguf(path)
    assert len(gguf.tensors) == len(oracle.tensors) == 7
    for ours, theirs in zip(gguf.tensors, oracle.tensors, strict=True):
        assert ours.name == theirs.name
        assert ours.shape == tuple(int(d) for d in reversed(theirs.shape))
        assert ours.qtype.value == int(theirs.tensor_type)
        assert gguf.data_offset + ours.offset == theirs.data_offset
        assert ours.nbytes == theirs.n_bytes
        assert tensor_data(gguf, ours).tobytes() == np.asarray(theirs.data).tobytes()
    values = {kv.key: kv.value for kv in gguf.kvs}
    assert values["general.architecture"] == "llama"
    assert values["general.file_type"] == 15
    assert values["llama.rope.freq_base"] == 10000.0
    assert values["flag"] is True
    assert values["tokenizer.ggml.tokens"] == ["<s>", "</s>", "hé"]
    assert values["tokenizer.ggml.scores"].tolist() == [0.5, -1.0, 2.0]
    assert [kv.key for kv in gguf.kvs] == list(oracle.fields)[3:]  # gguf-py adds 3 header fields


# --- hostile files -----------------------------------------------------------------------------


def _valid(gguf_bytes) -> bytes:
    return gguf_bytes(
        [
            ("general.architecture", V.STRING, "llama"),
            ("general.alignment", V.UINT32, 32),
            ("tokens", V.ARRAY, (V.STRING, ["a", "bc"])),
            ("scores", V.ARRAY, (V.FLOAT32, [1.0, 2.0])),
            ("eps", V.FLOAT32, 1e-5),
        ],
        [("w", (2, 32), 8), ("n", (32,), 0)],
    )


def test_every_truncation_of_a_valid_file_raises_format_error(tmp_path, gguf_bytes):
    raw = _valid(gguf_bytes)
    read_gguf(write(tmp_path, raw))  # the whole file is fine
    path = tmp_path / "cut.gguf"
    for length in range(len(raw)):
        rewrite(path, raw[:length])
        with pytest.raises(FormatError, match=r"cut\.gguf"):
            read_gguf(path)


def _header(n_tensors: int, n_kv: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def _tensor(gguf_bytes, name=b"t", ne=(32,), type_id=0, offset=0) -> bytes:
    dims = struct.pack(f"<I{len(ne)}Q", len(ne), *ne)
    return gguf_bytes.string(name) + dims + struct.pack("<IQ", type_id, offset)


HOSTILE = {
    "bad magic": lambda g: b"GGML" + b"\x00" * 60,
    "version 1": lambda g: _header(0, 0, version=1) + b"\x00" * 64,
    "version 4": lambda g: _header(0, 0, version=4) + b"\x00" * 64,
    "byte-swapped version": lambda g: _header(0, 0, version=0x03000000) + b"\x00" * 64,
    "10**12 tensors": lambda g: _header(10**12, 0) + b"\x00" * 64,
    "10**12 kvs": lambda g: _header(0, 10**12) + b"\x00" * 64,
    "key length past EOF": lambda g: _header(0, 1) + struct.pack("<Q", 2**40) + b"k" * 64,
    "value string past EOF": lambda g: (
        _header(0, 1) + g.string("k") + struct.pack("<IQ", 8, 2**63) + b"v" * 64
    ),
    "10**12 array items": lambda g: (
        _header(0, 1) + g.string("k") + struct.pack("<IIQ", 9, 5, 10**12) + b"\x00" * 64
    ),
    "10**12 array strings": lambda g: (
        _header(0, 1) + g.string("k") + struct.pack("<IIQ", 9, 8, 10**12) + b"\x00" * 64
    ),
    "array string past EOF": lambda g: (
        _header(0, 1) + g.string("k") + struct.pack("<IIQQ", 9, 8, 1, 10**9) + b"\x00" * 64
    ),
    "nested array": lambda g: g([("k", V.ARRAY, (V.ARRAY, [(V.INT32, [1])]))]),
    "unknown value type": lambda g: (
        _header(0, 1) + g.string("k") + struct.pack("<I", 13) + b"\x00" * 64
    ),
    "unknown array item type": lambda g: (
        _header(0, 1) + g.string("k") + struct.pack("<IIQ", 9, 99, 1) + b"\x00" * 64
    ),
    "empty key": lambda g: g([("", V.UINT8, 1)]),
    "duplicate keys": lambda g: g([("k", V.UINT8, 1), ("k", V.UINT8, 2)]),
    "alignment not a power of 2": lambda g: g([("general.alignment", V.UINT32, 48)]),
    "alignment zero": lambda g: g([("general.alignment", V.UINT32, 0)]),
    "alignment not uint32": lambda g: g([("general.alignment", V.UINT64, 32)]),
    "n_dims 5": lambda g: g(tensors=[("t", (1, 1, 1, 1, 32), 0)]),
    "dim product overflows uint64": lambda g: (
        _header(1, 0) + _tensor(g, ne=(4194305, 4194305, 211106198978564)) + b"\x00" * 64
    ),
    "dim negative as int64": lambda g: _header(1, 0) + _tensor(g, ne=(2**63,)) + b"\x00" * 64,
    "name of 64 bytes": lambda g: g(tensors=[("x" * 64, (32,), 0)]),
    "duplicate tensor names": lambda g: g(tensors=[("t", (32,), 0), ("t", (32,), 0)]),
    "unknown tensor type": lambda g: g(tensors=[("t", (32,), 4)], data=b"\x00" * 128),
    "tensor type past the table": lambda g: g(tensors=[("t", (32,), 43)], data=b"\x00" * 128),
    "row not a multiple of the block": lambda g: g(tensors=[("t", (2, 48), 8)], data=b""),
    "offset not aligned": lambda g: g(tensors=[("t", (32,), 0, 8)], data=b"\x00" * 256),
    "offset outside the file": lambda g: g(tensors=[("t", (32,), 0, 2**40)], data=b""),
    "data truncated": lambda g: g(tensors=[("t", (32,), 0)], data=b"\x00" * 127),
}


@pytest.mark.parametrize("build", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_files_raise_one_line_format_error_naming_the_file(tmp_path, gguf_bytes, build):
    path = write(tmp_path, build(gguf_bytes), "evil.gguf")
    with pytest.raises(FormatError) as caught:
        read_gguf(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("byte-swapped version", "big-endian or corrupt"),
        ("version 1", "version 1 is not supported"),
        ("10**12 tensors", "1000000000000 tensors"),
        ("nested array", "nested array"),
        ("duplicate keys", "duplicate metadata key 'k'"),
        ("duplicate tensor names", "duplicate tensor name 't'"),
        ("alignment not a power of 2", "48, which is not a power of 2"),
        ("n_dims 5", "has 5 dims"),
        ("dim product overflows uint64", "overflows"),
        ("unknown tensor type", "unknown ggml type id 4"),
        ("offset not aligned", "offset 8 is not a multiple of the alignment 32"),
        ("data truncated", "'t' data ends at byte 192 past the end of the file (191 bytes)"),
        ("key length past EOF", "claims 1099511627776 bytes"),
    ],
)
def test_hostile_file_messages_say_what_is_wrong(tmp_path, gguf_bytes, name, fragment):
    with pytest.raises(FormatError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        read_gguf(write(tmp_path, HOSTILE[name](gguf_bytes)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_format_error(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "fuzz.gguf"
    rewrite(path, data)
    with contextlib.suppress(FormatError):
        read_gguf(path)


# gguf_bytes is stateless, so sharing it across examples is safe.
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_corrupted_valid_files_raise_only_format_error(tmp_path_factory, gguf_bytes, data):
    raw = bytearray(_valid(gguf_bytes))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.sampled_from([0x00, 0x01, 0x09, 0x7F, 0x80, 0xFF]))
    path = tmp_path_factory.getbasetemp() / "flipped.gguf"
    rewrite(path, bytes(raw))
    try:
        gguf = read_gguf(path)
    except FormatError:
        return
    for tensor in gguf.tensors:  # whatever parses must map within the file
        assert gguf.data_offset + tensor.offset + tensor.nbytes <= gguf.file_size


# --- operating system errors ---------------------------------------------------------------------


def test_missing_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match=r"nope\.gguf: no such file"):
        read_gguf(tmp_path / "nope.gguf")


def test_directory_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="is a directory"):
        read_gguf(tmp_path)
