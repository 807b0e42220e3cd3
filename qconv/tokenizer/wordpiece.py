"""WordPiece vocabularies (BERT embedding models) as llama.cpp's converter writes them.

``BertModel.set_vocab`` (conversion/bert.py) takes the vocabulary from tokenizer.json (ids, added
tokens flagged special become CONTROL), then rewrites it to llama.cpp's "phantom space" form: a
continuation piece ``##ing`` becomes ``ing``, a word-initial piece ``the`` becomes ``▁the``, and
control tokens stay as they are. The file's tokenizer model is ``bert``.
"""

from __future__ import annotations

from typing import Any

from qconv.errors import FormatError
from qconv.tokenizer.sentencepiece import TokenType

__all__ = ["wordpiece_vocab"]

PHANTOM_SPACE = "\u2581"


def wordpiece_vocab(
    tok_json: dict[str, Any], size: int | None, label: str
) -> tuple[list[str], list[int]]:
    """(tokens in phantom-space form, token types) for ids 0 … size-1.

    Raises:
        FormatError: tokenizer.json's vocab is not an object of integer ids, or an id is past
            config.json's vocab_size.
    """
    vocab = tok_json["model"].get("vocab")
    if not isinstance(vocab, dict) or not all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in vocab.values()
    ):
        raise FormatError(f"{label}: model.vocab must map tokens to non-negative integer ids")
    added: dict[int, bool] = {}
    for entry in tok_json.get("added_tokens") or []:
        if isinstance(entry, dict) and isinstance(entry.get("id"), int):
            added[entry["id"]] = bool(entry.get("special"))
    by_id = {token_id: token for token, token_id in vocab.items()}
    n = size if size is not None else max(by_id, default=-1) + 1
    if by_id and max(by_id) >= n:
        raise FormatError(f"{label}: token id {max(by_id)} is past vocab_size {n} (config.json)")
    tokens: list[str] = []
    types: list[int] = []
    for token_id in range(n):
        token = by_id.get(token_id)
        if token is None:
            tokens.append(f"[PAD{token_id}]")
            types.append(int(TokenType.UNUSED))
            continue
        kind = TokenType.NORMAL
        if token_id in added:
            kind = TokenType.CONTROL if added[token_id] else TokenType.USER_DEFINED
        types.append(int(kind))
        if kind == TokenType.CONTROL:
            tokens.append(token)
        elif token.startswith("##"):
            tokens.append(token[2:])
        else:
            tokens.append(PHANTOM_SPACE + token)
    return tokens, types
