"""``tokenizer.ggml.pre``: the regex pre-tokenizer llama.cpp applies to a byte-level BPE vocabulary.

llama.cpp's converter finds the name by hashing the token ids of a fixed text, which needs the
`tokenizers` runtime and only recognises published vocabularies. qconv reads what decides the
pre-tokenization instead: the ``pre_tokenizer`` section of tokenizer.json, reduced to a signature
(``PRE_TOKENIZERS``). An unknown one is an error naming ``--tokenizer-pre NAME``: a wrong guess
would tokenize silently wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qconv.errors import SourceError

__all__ = ["PRE_TOKENIZERS", "detect_pre_tokenizer"]

# The regexes of tokenizer.json Split pre-tokenizers, as published by the model families.
_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_REGEX = _LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")
# Mistral's tekken (Mistral NeMo, Mistral Small 3, Ministral 3).
_TEKKEN_REGEX = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|"
    r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_BYTE_LEVEL = ("byte_level", False, False)  # add_prefix_space, use_regex
_GPT2_BYTE_LEVEL = ("byte_level", False, True)

# Pre-tokenizer signature (see _signature) -> tokenizer.ggml.pre; each name selects in llama.cpp
# (llama-vocab.cpp) the same regexes as the HF pre_tokenizer it is keyed on.
PRE_TOKENIZERS: dict[tuple[tuple[object, ...], ...], str] = {
    (("split", _LLAMA3_REGEX, "isolated", False), _BYTE_LEVEL): "llama-bpe",
    (("split", _QWEN2_REGEX, "isolated", False), _BYTE_LEVEL): "qwen2",
    (("split", _TEKKEN_REGEX, "isolated", False), _BYTE_LEVEL): "tekken",
    (("digits", True), _GPT2_BYTE_LEVEL): "starcoder",
    (_GPT2_BYTE_LEVEL,): "gpt-2",
}


def _signature(node: Any) -> tuple[tuple[object, ...], ...]:
    """The pre-tokenizer steps that change how text is split, ignoring offset-only options."""
    if not isinstance(node, dict):
        return ()
    kind = node.get("type")
    if kind == "Sequence":
        return tuple(step for child in node.get("pretokenizers", []) for step in _signature(child))
    if kind == "Split":
        pattern = node.get("pattern") or {}
        regex = pattern.get("Regex", pattern.get("String"))
        return (("split", regex, str(node.get("behavior", "")).lower(), bool(node.get("invert"))),)
    if kind == "ByteLevel":
        use_regex = bool(node.get("use_regex", True))
        return (("byte_level", bool(node.get("add_prefix_space")), use_regex),)
    if kind == "Digits":
        return (("digits", bool(node.get("individual_digits"))),)
    return ((str(kind), json.dumps(node, sort_keys=True)),)


def detect_pre_tokenizer(
    tok_json: dict[str, Any], tok_config: dict[str, Any], model_dir: Path
) -> str:
    """Name llama.cpp's pre-tokenizer for a byte-level BPE tokenizer.json.

    Raises:
        SourceError: the pre_tokenizer is not in ``PRE_TOKENIZERS``; names --tokenizer-pre.
    """
    name = PRE_TOKENIZERS.get(_signature(tok_json.get("pre_tokenizer")))
    if name == "starcoder" and tok_config.get("clean_up_tokenization_spaces") is False:
        name = "smollm"  # same regexes; llama.cpp's smollm also leaves spaces uncleaned
    if name is None:
        raise SourceError(
            f"{model_dir / 'tokenizer.json'}: qconv does not recognise this BPE pre-tokenizer, "
            f"and guessing would make llama.cpp tokenize text differently from the model. Give "
            f"the llama.cpp name with --tokenizer-pre NAME (for example llama-bpe, qwen2, "
            f"smollm, gpt-2; see tokenizer.ggml.pre in a GGUF of the same model family)"
        )
    return name
