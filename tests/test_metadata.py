"""Typed metadata: --metadata parsing, --metadata-file, and merging."""

from __future__ import annotations

from pathlib import Path

import pytest

from qconv.errors import UsageError
from qconv.gguf.constants import GGUFValueType as T
from qconv.gguf.metadata import KV, kv_string, load_metadata_file, merge_kvs, parse_override


@pytest.mark.parametrize(
    ("spec", "vtype", "value"),
    [
        ("general.name=Tiny", T.STRING, "Tiny"),
        ("a=5", T.UINT32, 5),
        ("a=-5", T.INT32, -5),
        ("a=5000000000", T.INT64, 5000000000),
        ("a=0.25", T.FLOAT32, 0.25),
        ("a=true", T.BOOL, True),
        ("a:u8=255", T.UINT8, 255),
        ("a:i64=-1", T.INT64, -1),
        ("a:f64=1e300", T.FLOAT64, 1e300),
        ("a:str=42", T.STRING, "42"),
        ("a:bool=0", T.BOOL, False),
        ("a=x=y", T.STRING, "x=y"),
        ("a:u32=0x10", T.UINT32, 16),
    ],
)
def test_overrides_get_the_type_they_ask_for_or_a_visible_default(
    spec: str, vtype: T, value: object
) -> None:
    kv = parse_override(spec)
    assert (kv.vtype, kv.value) == (vtype, value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("novalue", "expected KEY=VALUE"),
        ("=1", "the key is empty"),
        ("a:u9=1", "unknown type 'u9'"),
        ("a:u8=256", "not a UINT8"),
        ("a:bool=maybe", "not a valid BOOL"),
        ("a:f32=nan", "not a valid FLOAT32"),
        ("k:f32=1e300", "too large for f32 \\(use :f64\\)"),
        ("k=1e300", "too large for f32"),
        ("k:f64=1e309", "not a valid FLOAT64"),
        ("k=caf\udcff", "not valid UTF-8"),  # how Python hands over a non-UTF-8 byte in argv
        ("k\udcff=1", "not valid UTF-8"),
    ],
)
def test_bad_overrides_are_usage_errors(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_override(spec)


def test_metadata_file_accepts_plain_and_typed_values(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(
        '{"a": "x", "b": [1, 2], "c": [0.5, 1], "d": {"type": "u16", "value": 7},'
        ' "e": {"type": "array:str", "value": ["p", "q"]}}'
    )
    kvs = {kv.key: kv for kv in load_metadata_file(path)}
    assert kvs["a"] == KV("a", T.STRING, "x")
    assert kvs["b"] == KV("b", T.ARRAY, [1, 2], T.UINT32)
    assert kvs["c"].item_type == T.FLOAT32
    assert kvs["d"] == KV("d", T.UINT16, 7)
    assert kvs["e"] == KV("e", T.ARRAY, ["p", "q"], T.STRING)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "expected a JSON object"),
        ("{", "cannot read JSON"),
        ('{"a": []}', "empty array"),
        ('{"k": {"type": "f32", "value": 1e300}}', "too large for f32"),
        ('{"k": 1e300}', "too large for f32"),
        ('{"k": {"type": "f64", "value": 1%s}}' % ("0" * 400), "too large for f64"),
        ('{"k": [1e300]}', "too large for f32"),
        ('{"k": "\\udcff"}', "not valid UTF-8"),
        ('{"k": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ],
)
def test_bad_metadata_files_are_usage_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_metadata_file(path)


def test_merge_replaces_in_place_and_appends_new_keys() -> None:
    merged = merge_kvs(
        [kv_string("a", "1"), kv_string("b", "2")], [kv_string("a", "x"), kv_string("c", "3")]
    )
    assert [(kv.key, kv.value) for kv in merged] == [("a", "x"), ("b", "2"), ("c", "3")]
