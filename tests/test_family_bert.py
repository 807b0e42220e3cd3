"""BERT embedding models: WordPiece vocabulary in phantom-space form, pooling from
sentence-transformers' files. The whole file is proven against llama.cpp in test_family_goldens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qconv.errors import FormatError
from qconv.model.pooling import pooling_type
from qconv.tokenizer.sentencepiece import TokenType
from qconv.tokenizer.wordpiece import wordpiece_vocab

TOKENIZER = {
    "model": {"type": "WordPiece", "vocab": {"[CLS]": 0, "the": 1, "##s": 2, "[unused0]": 3}},
    "added_tokens": [{"id": 0, "content": "[CLS]", "special": True}],
}


def test_wordpiece_pieces_become_phantom_space_tokens_and_control_tokens_stay() -> None:
    tokens, types = wordpiece_vocab(TOKENIZER, 5, "tokenizer.json")
    assert tokens == ["[CLS]", "\u2581the", "s", "\u2581[unused0]", "[PAD4]"]
    assert types == [TokenType.CONTROL, TokenType.NORMAL, TokenType.NORMAL, TokenType.NORMAL,
                     TokenType.UNUSED]  # fmt: skip


def test_wordpiece_id_past_vocab_size_names_the_file() -> None:
    with pytest.raises(FormatError, match="tokenizer.json: token id 3 is past vocab_size 2"):
        wordpiece_vocab(TOKENIZER, 2, "tokenizer.json")


def _sentence_transformers(root: Path, pooling: dict[str, object]) -> Path:
    modules = [{"idx": 1, "name": "1", "path": "1_Pooling", "type": "x.models.Pooling"}]
    (root / "modules.json").write_text(json.dumps(modules))
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return root


@pytest.mark.parametrize(
    ("pooling", "expected"),
    [
        ({"pooling_mode_mean_tokens": True}, 1),
        ({"pooling_mode_cls_token": True}, 2),
        ({"pooling_mode_lasttoken": True}, 3),
        ({"pooling_mode": "cls"}, 2),
    ],
)
def test_pooling_type_comes_from_the_pooling_module(
    tmp_path: Path, pooling: dict[str, object], expected: int
) -> None:
    assert pooling_type(_sentence_transformers(tmp_path, pooling)) == expected


def test_no_modules_json_means_no_pooling_key(tmp_path: Path) -> None:
    assert pooling_type(tmp_path) is None


def test_max_pooling_is_refused_naming_the_file(tmp_path: Path) -> None:
    root = _sentence_transformers(tmp_path, {"pooling_mode_max_tokens": True})
    with pytest.raises(FormatError, match=r"1_Pooling/config.json: llama.cpp pools with mean"):
        pooling_type(root)


def test_malformed_modules_json_is_a_format_error(tmp_path: Path) -> None:
    (tmp_path / "modules.json").write_text("{not json")
    with pytest.raises(FormatError, match="modules.json: not valid JSON"):
        pooling_type(tmp_path)
