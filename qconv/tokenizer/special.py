"""Special tokens, add_* flags, chat template and normalizer flags, as gguf-py's SpecialVocab
reads them from tokenizer.json, tokenizer_config.json and config.json (gguf-py/gguf/vocab.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qconv.errors import FormatError
from qconv.source import read_json
from qconv.tokenizer.fields import TOKENIZER_CONFIG, objects, str_field

__all__ = ["SPECIAL_TYPES", "read_json_object", "special_tokens"]

SPECIAL_TYPES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A tokenizer file's JSON object, or None when the file is absent.

    Raises:
        SourceError / FormatError: unreadable, not JSON, or not an object.
    """
    if not path.is_file():
        return None
    document = read_json(path)
    if not isinstance(document, dict):
        raise FormatError(f"{path}: expected a JSON object")
    return document


def _content(entry: Any) -> str | None:
    if isinstance(entry, dict):
        entry = entry.get("content")
    return entry if isinstance(entry, str) else None


def _template_flags(
    processor: dict[str, Any], names: dict[str, str | None], adds: dict[str, bool]
) -> None:
    """add_bos/add_eos/add_sep from a TemplateProcessing post-processor (simple templates only)."""
    single = processor.get("single") or []
    first = single[0].get("SpecialToken", {}).get("id") if len(single) > 1 else None
    last = single[-1].get("SpecialToken", {}).get("id") if len(single) > 1 else None
    if first:
        names["bos"] = names["bos"] or first
        adds["bos"] = first in (names["bos"], names["cls"])
    if last:
        if names["eos"] is None:
            names["eos"] = last
        adds["eos"] = last == names["eos"]
    pair = list(processor.get("pair") or [])
    if first and pair and pair[0].get("SpecialToken", {}).get("id") == first:
        pair = pair[1:]
    if last and pair and pair[-1].get("SpecialToken", {}).get("id") == last:
        pair = pair[:-1]
    if len(pair) > 2 and "Sequence" in pair[0] and "Sequence" in pair[-1]:
        middle = [p.get("SpecialToken", {}).get("id") for p in pair[1:-1]]
        adds["sep"] = any(m in (names["sep"], names["eos"]) for m in middle[:2]) and not last


def special_tokens(
    model_dir: Path,
    tok_json: dict[str, Any] | None,
    tok_config: dict[str, Any] | None,
    config: dict[str, Any],
) -> tuple[dict[str, int], dict[str, bool], str | None, dict[str, bool]]:
    """(special ids, add_* flags, chat template, normalizer flags) in llama.cpp's order.

    Ids come from tokenizer_config.json's ``<type>_token`` looked up among tokenizer.json's added
    tokens, then from config.json's ``<type>_token_id``; add flags from tokenizer.json's
    post-processor, then tokenizer_config.json's ``add_<type>_token``.
    """
    tc = dict(tok_config or {})
    names = {typ: _content(tc.get(f"{typ}_token")) for typ in SPECIAL_TYPES}
    adds: dict[str, bool] = {}
    normalizer: dict[str, bool] = {}
    if tok_json:
        names["bos"] = names["bos"] or names["cls"]
        names["eos"] = names["eos"] or names["sep"]
        post = tok_json.get("post_processor") or {}
        for processor in post.get("processors", [post]):
            kind = processor.get("type")
            if kind == "ByteLevel":
                adds.setdefault("bos", False)
                adds.setdefault("eos", False)
            elif kind == "RobertaProcessing":
                adds.update(bos=True, eos=True, sep=True)
            elif kind == "TemplateProcessing":
                _template_flags(processor, names, adds)
        _normalizer_flags(tok_json.get("normalizer"), normalizer)
    ids: dict[str, int] = {}
    added = (tok_json or {}).get("added_tokens") or []
    if tok_config is not None:
        for typ in SPECIAL_TYPES:
            flag = tc.get(f"add_{typ}_token")
            if isinstance(flag, bool) and typ not in adds:
                adds[typ] = flag
            found = next((t.get("id") for t in added if t.get("content") == names[typ]), None)
            if isinstance(found, int) and names[typ] is not None:
                ids.setdefault(typ, found)
    for typ in SPECIAL_TYPES:
        value = config.get(f"{typ}_token_id")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            ids.setdefault(typ, value)
    return ids, adds, _chat_template(model_dir, tok_config), normalizer


def _normalizer_flags(node: Any, out: dict[str, bool]) -> None:
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "Lowercase":
        out["lowercase"] = True
    elif kind == "StripAccents":
        out["strip_accents"] = True
    elif kind == "BertNormalizer":
        for key in ("lowercase", "strip_accents"):
            if isinstance(node.get(key), bool):
                out[key] = node[key]
    elif kind == "Sequence":
        for child in node.get("normalizers", []):
            _normalizer_flags(child, out)


def _chat_template(model_dir: Path, tok_config: dict[str, Any] | None) -> str | None:
    """tokenizer_config.json's chat_template, else chat_template.jinja / chat_template.json."""
    if tok_config is None:
        return None
    template = tok_config.get("chat_template")
    if template is None:
        jinja = model_dir / "chat_template.jinja"
        if jinja.is_file():
            template = jinja.read_text(encoding="utf-8")
        else:
            template = (read_json_object(model_dir / "chat_template.json") or {}).get(
                "chat_template"
            )
    if isinstance(template, list):  # named templates: llama.cpp's default one is "default"
        for i, entry in enumerate(objects(tok_config, "chat_template", TOKENIZER_CONFIG)):
            for key in ("name", "template"):
                str_field(entry, key, TOKENIZER_CONFIG, label=f"chat_template[{i}].{key}")
        template = next((t["template"] for t in template if t["name"] == "default"), None)
    return template if isinstance(template, str) else None
