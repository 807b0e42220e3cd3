"""Tokenizer files -> the ``tokenizer.*`` metadata llama.cpp reads, as its converter writes it.

Three vocabulary kinds:

- SentencePiece (Llama 2, Mistral, TinyLlama): ``tokenizer.model`` is read directly (a small
  protobuf parser in qconv.tokenizer.sentencepiece), so no sentencepiece/protobuf dependency is
  needed.
- Byte-level BPE (Llama 3, Qwen, SmolLM): ``tokenizer.json``'s vocab, added tokens and merges.
- WordPiece (BERT embedding models): ``tokenizer.json``'s vocab in llama.cpp's phantom-space form
  (qconv.tokenizer.wordpiece).

``tokenizer.ggml.pre`` (the regex pre-tokenizer llama.cpp must use) is named by
qconv.tokenizer.pre from tokenizer.json's pre_tokenizer section.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qconv.errors import FormatError, SourceError
from qconv.gguf.constants import GGUFValueType
from qconv.gguf.metadata import KV, kv_array, kv_bool, kv_string, kv_uint32
from qconv.tokenizer.fields import (
    TOKENIZER_JSON,
    added_tokens,
    added_tokens_decoder,
    dict_field,
    int_field,
    list_field,
    objects,
    str_field,
)
from qconv.tokenizer.pre import PRE_TOKENIZERS, detect_pre_tokenizer
from qconv.tokenizer.sentencepiece import TokenType, read_sentencepiece
from qconv.tokenizer.special import read_json_object, special_tokens
from qconv.tokenizer.wordpiece import wordpiece_vocab

__all__ = [
    "ID_KEYS",
    "PRE_TOKENIZERS",
    "TokenType",
    "VocabRules",
    "detect_pre_tokenizer",
    "read_added_tokens",
    "read_sentencepiece",
    "tokenizer_metadata",
    "tokenizer_vocab_size",
]

ID_KEYS = {
    "bos": "tokenizer.ggml.bos_token_id",
    "eos": "tokenizer.ggml.eos_token_id",
    "unk": "tokenizer.ggml.unknown_token_id",
    "sep": "tokenizer.ggml.seperator_token_id",  # sic: llama.cpp's spelling
    "pad": "tokenizer.ggml.padding_token_id",
    "mask": "tokenizer.ggml.mask_token_id",
}
# llama.cpp's BERT tokenizer (WPM) ignores tokenizer.ggml.pre; its converter still names one by
# hashing its encoding of a fixed text; "bert-bge" is the name it gives the uncased BERT
# vocabulary most embedding models share (bge-small, all-MiniLM).
WORDPIECE_PRE = "bert-bge"
ADD_KEYS = {typ: f"tokenizer.ggml.add_{typ}_token" for typ in ("bos", "eos", "sep")}
# Families whose llama.cpp converter writes add_space_prefix from tokenizer_config.json (those
# converted by LlamaModel and its subclasses, whose set_vocab does it).
_SPACE_PREFIX_TYPES = ("llama", "mistral", "smollm3", "granite", "mistral3", "ministral3")


def read_added_tokens(model_dir: Path) -> dict[str, int]:
    """tokenizer.json's added tokens, text -> id (transformers' ``get_added_vocab()``)."""
    return {
        content: token_id
        for token_id, content, _ in added_tokens(read_json_object(model_dir / "tokenizer.json"))
    }


def looks_special(token: str) -> bool:
    """Added tokens some models forget to flag special (<|...|>, <pad>, <unused..>)."""
    return (
        token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
        or (token.startswith("<|") and token.endswith("|>"))
        or (token.startswith("<｜") and token.endswith("｜>"))
        or (token.startswith("<unused") and token.endswith(">"))
    )


@dataclass(frozen=True, slots=True)
class VocabRules:
    """How a family's set_vocab departs from the common one (an ArchSpec field)."""

    # add_space_prefix written after a SentencePiece vocabulary (Gemma: False).
    space_prefix: bool | None = None
    # SentencePiece added tokens (tokenizer_config.json's added_tokens_decoder, then
    # tokenizer.json's added_tokens) taken as written: user-defined unless flagged special (Phi-3).
    added_verbatim: bool = False
    # The converter reads only tokenizer.model: without it, it stops (Gemma 2, Phi-3).
    spm_required: bool = False
    # tokenizer_config.json tokenizer_class values that select tokenizer.json's BPE even beside
    # a tokenizer.model (Phi-4: GPT2Tokenizer).
    bpe_classes: tuple[str, ...] = ()


def _uses_sentencepiece(
    model_dir: Path, tok_config: dict[str, Any] | None, rules: VocabRules
) -> bool:
    if rules.bpe_classes and (tok_config or {}).get("tokenizer_class") in rules.bpe_classes:
        return False
    if (model_dir / "tokenizer.model").is_file():
        return True
    if rules.spm_required:
        raise SourceError(
            f"{model_dir / 'tokenizer.model'} is missing: llama.cpp's converter reads this "
            "model's vocabulary from it (copy it from the original repository, or convert with "
            "--no-vocab for a weights-only file)"
        )
    return False


def tokenizer_metadata(
    model_dir: Path,
    config: dict[str, Any],
    *,
    pre: str | None = None,
    n_vocab: int | None = None,
    rules: VocabRules = VocabRules(),
) -> list[KV]:
    """All ``tokenizer.*`` KVs for the checkpoint in ``model_dir``, in llama.cpp's order.

    ``pre`` overrides the detected pre-tokenizer (``--tokenizer-pre``); ``n_vocab`` overrides
    config.json's ``vocab_size`` (the embedding rows); ``rules`` are the family's departures
    from the common set_vocab.

    Raises:
        SourceError: no tokenizer files (or no tokenizer.model where the family needs it),
            unreadable ones, or a pre-tokenizer qconv cannot name.
    """
    tok_config = read_json_object(model_dir / "tokenizer_config.json")
    tok_json = read_json_object(model_dir / "tokenizer.json")
    size = n_vocab if n_vocab is not None else int_field(config, "vocab_size", default=None)
    kvs: list[KV] = []
    prefix = (tok_config or {}).get("add_prefix_space")
    if config.get("model_type") in _SPACE_PREFIX_TYPES and isinstance(prefix, bool):
        kvs.append(kv_bool("tokenizer.ggml.add_space_prefix", prefix))
    if _uses_sentencepiece(model_dir, tok_config, rules):
        added = _verbatimadded_tokens(tok_config, tok_json) if rules.added_verbatim else None
        tokens, scores, types = _sentencepiece_vocab(model_dir, tok_config, size, added)
        kvs += [
            kv_string("tokenizer.ggml.model", "llama"),
            kv_string("tokenizer.ggml.pre", pre or "default"),
            kv_array("tokenizer.ggml.tokens", tokens, GGUFValueType.STRING),
            kv_array("tokenizer.ggml.scores", scores, GGUFValueType.FLOAT32),
            kv_array("tokenizer.ggml.token_type", types, GGUFValueType.INT32),
        ]
        kvs += _special_vocab(model_dir, tok_json, tok_config, config, len(tokens), False)
        if rules.space_prefix is not None:
            kvs.append(kv_bool("tokenizer.ggml.add_space_prefix", rules.space_prefix))
        return kvs
    if tok_json is None:
        raise SourceError(
            f"{model_dir}: no tokenizer.json or tokenizer.model; convert with --no-vocab for a "
            f"weights-only file (llama.cpp cannot tokenize text with it)"
        )
    model = dict_field(tok_json, "model", TOKENIZER_JSON, default={})
    if model.get("type") == "WordPiece":
        return kvs + _wordpiece_metadata(model_dir, tok_json, tok_config, config, size, pre)
    if model.get("type") != "BPE" or not _is_byte_level(tok_json):
        raise SourceError(
            f"{model_dir / 'tokenizer.json'}: a {model.get('type')} tokenizer that is not "
            f"byte-level BPE and has no tokenizer.model; qconv converts byte-level BPE and "
            f"SentencePiece vocabularies (use --no-vocab for a weights-only file)"
        )
    tokens, types = _bpe_vocab(tok_json, size)
    name = pre or detect_pre_tokenizer(tok_json, tok_config or {}, model_dir)
    kvs += [
        kv_string("tokenizer.ggml.model", "gpt2"),
        kv_string("tokenizer.ggml.pre", name),
        kv_array("tokenizer.ggml.tokens", tokens, GGUFValueType.STRING),
        kv_array("tokenizer.ggml.token_type", types, GGUFValueType.INT32),
    ]
    return kvs + _special_vocab(model_dir, tok_json, tok_config, config, None, True)


def _wordpiece_metadata(
    model_dir: Path,
    tok_json: dict[str, Any],
    tok_config: dict[str, Any] | None,
    config: dict[str, Any],
    size: int | None,
    pre: str | None,
) -> list[KV]:
    """BERT: token type count first, then the phantom-space vocabulary (BertModel.set_vocab)."""
    tokens, types = wordpiece_vocab(tok_json, size, str(model_dir / "tokenizer.json"))
    type_count = config.get("type_vocab_size", 1)
    if isinstance(type_count, bool) or not isinstance(type_count, int) or type_count < 0:
        raise FormatError(f"{model_dir / 'config.json'}: 'type_vocab_size' must be an integer")
    kvs = [
        kv_uint32("tokenizer.ggml.token_type_count", type_count),
        kv_string("tokenizer.ggml.model", "bert"),
        kv_string("tokenizer.ggml.pre", pre or WORDPIECE_PRE),
        kv_array("tokenizer.ggml.tokens", tokens, GGUFValueType.STRING),
        kv_array("tokenizer.ggml.token_type", types, GGUFValueType.INT32),
    ]
    return kvs + _special_vocab(model_dir, tok_json, tok_config, config, len(tokens), False)


def tokenizer_vocab_size(model_dir: Path, config: dict[str, Any]) -> int:
    """How many tokens the tokenizer really has, as Gemma 3's converter counts them to trim the
    embedding: tokenizer.model's token list as written (config.json's ``vocab_size``, else its
    pieces), or tokenizer.json's vocab plus its added tokens.

    Raises:
        SourceError: neither file is there, or tokenizer.json has no vocab.
    """
    if (model_dir / "tokenizer.model").is_file():
        size = config.get("vocab_size")
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            return size
        return len(read_sentencepiece(model_dir / "tokenizer.model"))
    tok_json = read_json_object(model_dir / "tokenizer.json")
    model = dict_field(tok_json or {}, "model", TOKENIZER_JSON, {})
    vocab = dict_field(model, "vocab", TOKENIZER_JSON, None, label="model.vocab")
    if tok_json is None or vocab is None:
        raise SourceError(
            f"{model_dir}: no tokenizer.model, and no tokenizer.json with a vocab; this model's "
            "embedding is trimmed to the tokenizer's vocabulary, so its tokenizer files are needed"
        )
    return len(vocab) + len(objects(tok_json, "added_tokens", TOKENIZER_JSON, []))


def _is_byte_level(tok_json: dict[str, Any]) -> bool:
    def has_byte_level(node: Any) -> bool:
        if not isinstance(node, dict):
            return False
        if node.get("type") == "ByteLevel":
            return True
        children = node.get("pretokenizers") or node.get("decoders") or []
        return any(has_byte_level(child) for child in children)

    return has_byte_level(tok_json.get("pre_tokenizer")) or has_byte_level(tok_json.get("decoder"))


def _bpe_vocab(tok_json: dict[str, Any], size: int | None) -> tuple[list[str], list[int]]:
    vocab: dict[str, int] = dict(dict_field(tok_json["model"], "vocab", TOKENIZER_JSON, {}))
    bad = next((t for t, i in vocab.items() if type(i) is not int or i < 0), None)
    if bad is not None:
        int_field(vocab, bad, TOKENIZER_JSON, label=f"model.vocab[{bad!r}]")  # raises
    added = {content: (token_id, special) for token_id, content, special in added_tokens(tok_json)}
    vocab.update({content: token_id for content, (token_id, _) in added.items()})
    by_id = {i: token for token, i in vocab.items()}
    n = size if size is not None else max(by_id) + 1
    if by_id and max(by_id) >= n:
        raise SourceError(f"tokenizer has id {max(by_id)} but vocab_size is {n} (config.json)")
    tokens, types = [], []
    for i in range(n):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.UNUSED)
        elif token in added:
            special = added[token][1] or looks_special(token)
            if not special:
                token = token.replace("\u2581", " ")  # llama.cpp expects pre-normalized spaces
            tokens.append(token)
            types.append(TokenType.CONTROL if special else TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(TokenType.NORMAL)
    return tokens, [int(t) for t in types]


def _verbatimadded_tokens(
    tok_config: dict[str, Any] | None, tok_json: dict[str, Any] | None
) -> list[tuple[int, str, bool]]:
    """(id, content, special) of tokenizer_config.json's added_tokens_decoder, then of
    tokenizer.json's added_tokens, in file order (later entries win)."""
    return added_tokens_decoder(tok_config) + added_tokens(tok_json)


def _sentencepiece_vocab(
    model_dir: Path,
    tok_config: dict[str, Any] | None,
    size: int | None,
    verbatim: list[tuple[int, str, bool]] | None = None,
) -> tuple[list[str], list[float], list[int]]:
    pieces = read_sentencepiece(model_dir / "tokenizer.model")
    n = size if size is not None else len(pieces)
    tokens = [f"[PAD{i}]" for i in range(n)]
    scores = [-10000.0] * n
    types = [int(TokenType.UNUSED)] * n
    for i, (piece, score, kind) in enumerate(pieces[:n]):
        tokens[i], scores[i], types[i] = piece, score, int(kind)
    added = read_json_object(model_dir / "added_tokens.json") or {}
    for content, token_id in added.items():
        if isinstance(token_id, int) and 0 <= token_id < n:
            tokens[token_id], scores[token_id] = content, -1000.0
            types[token_id] = int(TokenType.USER_DEFINED)
    if verbatim is not None:
        for token_id, content, special in verbatim:
            if not 0 <= token_id < n:
                raise SourceError(
                    f"{model_dir}: added token {content!r} has id {token_id}, outside the "
                    f"vocabulary of {n} (config.json vocab_size)"
                )
            tokens[token_id], scores[token_id] = content, -1000.0
            types[token_id] = int(TokenType.CONTROL if special else TokenType.USER_DEFINED)
        return tokens, scores, types
    for token_id, content, flagged in added_tokens_decoder(tok_config):
        if not 0 <= token_id < n:
            continue
        special = flagged or looks_special(content)
        types[token_id] = int(TokenType.CONTROL if special else TokenType.USER_DEFINED)
        tokens[token_id] = content if special else content.replace("\u2581", " ")
        scores[token_id] = -1000.0
    return tokens, scores, types


def _merges(tok_json: dict[str, Any] | None) -> list[str]:
    model = dict_field(tok_json or {}, "model", TOKENIZER_JSON, {})
    merges = list_field(model, "merges", TOKENIZER_JSON, [], label="model.merges")
    if merges and isinstance(merges[0], list):
        for i, pair in enumerate(merges):
            if not (isinstance(pair, list) and len(pair) == 2 and all(map(_is_str, pair))):
                raise FormatError(
                    f"{TOKENIZER_JSON}: 'model.merges[{i}]' must be a pair of strings, "
                    f"got {pair!r:.40}"
                )
        # transformers >= 4.45 stores pairs so parts may hold spaces; llama.cpp wants "a b"
        # with each literal space shifted to U+0120+ (chr(ord(" ") + 256)), as its converter does.
        return [" ".join(part.replace(" ", "\u0120") for part in pair) for pair in merges]
    for i, merge in enumerate(merges):
        str_field({"m": merge}, "m", TOKENIZER_JSON, label=f"model.merges[{i}]")
    return list(merges)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _special_vocab(
    model_dir: Path,
    tok_json: dict[str, Any] | None,
    tok_config: dict[str, Any] | None,
    config: dict[str, Any],
    n_vocab: int | None,
    load_merges: bool,
) -> list[KV]:
    kvs: list[KV] = []
    if load_merges and (merges := _merges(tok_json)):
        kvs.append(kv_array("tokenizer.ggml.merges", merges, GGUFValueType.STRING))
    ids, adds, template, normalizer = special_tokens(model_dir, tok_json, tok_config, config)
    for typ, token_id in ids.items():
        # gguf-py's writer has no setter for a cls id, so llama.cpp's converter skips it.
        if typ in ID_KEYS and (n_vocab is None or token_id < n_vocab):
            kvs.append(kv_uint32(ID_KEYS[typ], token_id))
    kvs += [kv_bool(ADD_KEYS[typ], value) for typ, value in adds.items() if typ in ADD_KEYS]
    if template is not None:
        kvs.append(kv_string("tokenizer.chat_template", template))
    kvs += [kv_bool(f"tokenizer.ggml.normalizer.{k}", v) for k, v in normalizer.items()]
    return kvs
