"""Tokenizer metadata equals what llama.cpp's converter writes, for BPE and SentencePiece vocabs."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from arch_fixtures import CASES, golden_kvs, golden_path, recorded_tokens, write_case

from qconv.errors import FormatError, SourceError
from qconv.gguf.constants import GGUFValueType
from qconv.tokenizer.vocab import TokenType, read_sentencepiece, tokenizer_metadata


def _golden_tokenizer_kvs(name: str) -> list:
    return [g for g in golden_kvs(golden_path(CASES[name])) if g.key.startswith("tokenizer.")]


def _equal(vtype: int, item_type: int | None, ours: object, theirs: object) -> bool:
    if GGUFValueType.FLOAT32 in (vtype, item_type):
        return bool(np.array_equal(np.float32(ours), np.float32(theirs)))  # type: ignore[arg-type]
    return ours == theirs


@pytest.mark.parametrize("name", sorted(CASES))
def test_tokenizer_kvs_equal_llama_cpp_golden(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    if not golden_path(case).is_file():
        pytest.skip("golden not generated")
    ours = tokenizer_metadata(write_case(case, tmp_path), case.config)
    theirs = _golden_tokenizer_kvs(name)
    assert [kv.key for kv in ours] == [g.key for g in theirs]
    for kv, g in zip(ours, theirs, strict=True):
        assert (int(kv.vtype), kv.item_type and int(kv.item_type)) == (g.vtype, g.item_type), kv.key
        assert _equal(g.vtype, g.item_type, kv.value, g.value), kv.key


def test_pre_tokenizer_override_wins_over_detection(tmp_path: Path) -> None:
    case = CASES["qwen2"]
    kvs = tokenizer_metadata(write_case(case, tmp_path), case.config, pre="deepseek-r1-qwen")
    assert {kv.key: kv.value for kv in kvs}["tokenizer.ggml.pre"] == "deepseek-r1-qwen"


def test_unknown_pre_tokenizer_is_an_error_naming_the_flag(tmp_path: Path) -> None:
    case = CASES["llama3"]
    directory = write_case(case, tmp_path)
    doc = json.loads((directory / "tokenizer.json").read_text("utf-8"))
    doc["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\p{L}+|\s+"
    (directory / "tokenizer.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SourceError, match="--tokenizer-pre NAME"):
        tokenizer_metadata(directory, case.config)
    assert tokenizer_metadata(directory, case.config, pre="llama-bpe")


def test_starcoder_and_smollm_are_told_apart_by_space_cleanup(tmp_path: Path) -> None:
    case = CASES["smollm"]
    directory = write_case(case, tmp_path)
    config_path = directory / "tokenizer_config.json"
    tok_config = json.loads(config_path.read_text("utf-8"))
    tok_config["clean_up_tokenization_spaces"] = True
    config_path.write_text(json.dumps(tok_config), encoding="utf-8")
    kvs = {kv.key: kv.value for kv in tokenizer_metadata(directory, case.config)}
    assert kvs["tokenizer.ggml.pre"] == "starcoder"


def test_missing_tokenizer_files_point_to_no_vocab(tmp_path: Path) -> None:
    directory = write_case(CASES["qwen2"], tmp_path, with_tokenizer=False)
    with pytest.raises(SourceError, match="--no-vocab"):
        tokenizer_metadata(directory, CASES["qwen2"].config)


def test_vocab_padded_to_config_size_with_unused_tokens(tmp_path: Path) -> None:
    case = CASES["qwen2"]
    kvs = tokenizer_metadata(write_case(case, tmp_path), case.config, n_vocab=304)
    by_key = {kv.key: kv.value for kv in kvs}
    assert by_key["tokenizer.ggml.tokens"][300:] == ["[PAD300]", "[PAD301]", "[PAD302]", "[PAD303]"]
    assert by_key["tokenizer.ggml.token_type"][300:] == [TokenType.UNUSED] * 4


def test_sentencepiece_reader_matches_recorded_vocabulary(tmp_path: Path) -> None:
    pieces = read_sentencepiece(write_case(CASES["llama2"], tmp_path) / "tokenizer.model")
    assert len(pieces) == 384
    assert pieces[0] == ("<unk>", 0.0, TokenType.UNKNOWN)
    assert pieces[3] == ("<0x00>", 0.0, TokenType.BYTE)
    # Every id the SentencePiece library produced for the sample texts is a known piece.
    ids = {i for row in recorded_tokens(CASES["llama2"])["ids"] for i in row}
    assert max(ids) < len(pieces)


@pytest.mark.parametrize("blob", [b"\x0a\xff", b"\x0b", b"\x0a\x05\x0a\x03ab", b""])
def test_malformed_sentencepiece_model_is_a_source_error(blob: bytes, tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.model"
    path.write_bytes(blob)
    with pytest.raises(SourceError, match=r"tokenizer\.model"):
        read_sentencepiece(path)


def test_sentencepiece_piece_fields_are_decoded(tmp_path: Path) -> None:
    def piece(text: bytes, score: float, kind: int) -> bytes:
        body = b"\x0a" + bytes([len(text)]) + text + b"\x15" + struct.pack("<f", score)
        body += b"\x18" + bytes([kind])
        return b"\x0a" + bytes([len(body)]) + body

    path = tmp_path / "tokenizer.model"
    path.write_bytes(piece(b"<s>", 0.0, 3) + piece(b"\xe2\x96\x81a", -1.5, 4) + b"\x12\x00")
    assert read_sentencepiece(path) == [
        ("<s>", 0.0, TokenType.CONTROL),
        ("\u2581a", -1.5, TokenType.NORMAL),  # user-defined pieces count as normal, as in llama.cpp
    ]


DEEP = "[" * 100_000 + "]" * 100_000


def _edit_json(path: Path, edit: Any) -> None:
    if isinstance(edit, str):
        path.write_text(edit)
        return
    document = json.loads(path.read_text()) if path.exists() else {}
    edit(document)
    path.write_text(json.dumps(document))


def _set(key: str, value: Any) -> Any:
    return lambda d: d.__setitem__(key, value)


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        (
            "config.json",
            _set("architectures", 5),
            "config.json: 'architectures' must be a list of class names",
        ),
        (
            "config.json",
            _set("architectures", [5]),
            "config.json: 'architectures' must be a list of class names",
        ),
        (
            "config.json",
            _set("rope_theta", "abc"),
            "config.json: 'rope_theta' must be a number, got 'abc'",
        ),
        (
            "config.json",
            _set("rope_theta", 1e300),
            "config.json: 'rope_theta' is 1e\\+300; it must be a finite float32",
        ),
        (
            "config.json",
            _set("num_hidden_layers", -2),
            "config.json: 'num_hidden_layers' is -2; it must be at least 0",
        ),
        (
            "config.json",
            _set("hidden_size", "64"),
            "config.json: 'hidden_size' must be an integer, got '64'",
        ),
        (
            "config.json",
            _set("num_attention_heads", 2.5),
            "config.json: 'num_attention_heads' must be an integer, got 2.5",
        ),
        (
            "config.json",
            _set("max_position_embeddings", 2**40),
            "'max_position_embeddings' is 1099511627776; it must be at most 4294967295",
        ),
        (
            "config.json",
            _set("rope_scaling", {"rope_type": "yarn", "factor": 4.0}),
            "config.json: yarn rope scaling needs an integer 'original_max_position_embeddings'",
        ),
        (
            "config.json",
            _set("rope_scaling", [1]),
            "config.json: 'rope_scaling' must be an object, got \\[1\\]",
        ),
        ("config.json", DEEP, "config.json: the file is nested too deeply"),
        (
            "tokenizer.json",
            _set("model", "BPE"),
            "tokenizer.json: 'model' must be a JSON object, got 'BPE'",
        ),
        (
            "tokenizer.json",
            lambda d: d["added_tokens"][0].pop("id"),
            "tokenizer.json: 'added_tokens\\[0\\].id' is missing",
        ),
        (
            "tokenizer.json",
            lambda d: d["model"].__setitem__("merges", [["a", 1]]),
            "tokenizer.json: 'model.merges\\[0\\]' must be a pair of strings, got \\['a', 1\\]",
        ),
        (
            "tokenizer.json",
            lambda d: d["model"].__setitem__("merges", [5]),
            "tokenizer.json: 'model.merges\\[0\\]' must be a string, got 5",
        ),
        (
            "tokenizer.json",
            lambda d: d["model"]["vocab"].__setitem__("x", "7"),
            "tokenizer.json: 'model.vocab\\['x'\\]' must be an integer .*, got '7'",
        ),
        ("tokenizer.json", DEEP, "tokenizer.json: the file is nested too deeply"),
        (
            "tokenizer_config.json",
            _set("chat_template", [1, 2]),
            "tokenizer_config.json: 'chat_template\\[0\\]' must be a JSON object, got 1",
        ),
        ("tokenizer_config.json", DEEP, "tokenizer_config.json: the file is nested too deeply"),
    ],
)
def test_wrong_types_in_model_files_are_one_format_error_naming_file_and_key(
    tiny_checkpoint: Path, file: str, edit: Any, message: str
) -> None:
    from qconv.conversion import plan_conversion

    _edit_json(tiny_checkpoint / file, edit)
    with pytest.raises(FormatError, match=message):
        plan_conversion(str(tiny_checkpoint), target="q8_0")


def test_a_sentencepiece_added_token_id_must_be_an_integer(tiny_checkpoint: Path) -> None:
    from qconv.conversion import plan_conversion

    (tiny_checkpoint / "tokenizer.json").unlink()
    spm = Path(__file__).parent / "golden" / "arch" / "llama2" / "tokenizer" / "tokenizer.model"
    (tiny_checkpoint / "tokenizer.model").write_bytes(spm.read_bytes())
    plan_conversion(str(tiny_checkpoint))  # valid as it is
    _edit_json(
        tiny_checkpoint / "tokenizer_config.json",
        _set("added_tokens_decoder", {"x": {"content": "a"}}),
    )
    with pytest.raises(FormatError, match="added_tokens_decoder\\['x'\\]: the key must be a token"):
        plan_conversion(str(tiny_checkpoint))
