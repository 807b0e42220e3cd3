"""Model names as llama.cpp's converter reads them: ``org/Base-Size-Finetune-Version`` ids.

A port of gguf-py's ``Metadata.get_model_id_components`` and ``Metadata.id_to_title``
(gguf/metadata.py), applied to the folder name, config.json's ``_name_or_path`` and every base
model or dataset id a model card lists. The heuristics are llama.cpp's, quirks included (a size
far from the real parameter count is taken for a context length and becomes part of the
finetune), because the point is writing the same ``general.*`` values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ModelId", "id_to_title", "model_id_components"]

_VERSION_OR_NUMBER = re.compile(r"^(v\d+(?:\.\d+)*|\d.*)$")
_VERSION = re.compile(r"(v|iter)?\d+([.]\d+)*", re.IGNORECASE)
_QUANT_TYPE = re.compile(r"i?q\d(_\w)*|b?fp?(16|32)", re.IGNORECASE)
_SIZE = re.compile(r"(([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl)", re.I)
_FINETUNE = re.compile(r"chat|instruct|vision|lora", re.IGNORECASE)


def id_to_title(text: str) -> str:
    """``tiny-llama3`` -> ``Tiny Llama3``: lowercase words capitalised, versions and sizes kept."""
    words = text.strip().replace("-", " ").split()
    return " ".join(
        w.title() if w.islower() and not _VERSION_OR_NUMBER.match(w) else w for w in words
    )


@dataclass(frozen=True, slots=True)
class ModelId:
    """The parts of a model id; None where the id does not say."""

    full_name: str | None = None
    organization: str | None = None
    basename: str | None = None
    finetune: str | None = None
    version: str | None = None
    size_label: str | None = None


def _size_part(part: str, total_params: int, types: set[str]) -> str:
    """Normalise a size word (``7b1`` -> ``7.1B``); a size far from the model's is a context
    length (``262k``), which llama.cpp files under the finetune in lower case."""
    part = part.replace("_", ".")
    if part[-1].isdecimal():  # bloom-7b1 notation
        part = part[:-2] + "." + part[-1] + part[-2]
    if len(part) > 1 and part[-2].isdecimal() and part[-1] in "kmbt":
        part = part[:-1] + part[-1].upper()
    if total_params != 0:
        try:
            label_params = float(part[:-1]) * pow(1000, " KMBT".find(part[-1]))
        except ValueError:
            label_params = None  # "8x7B", "A3B", "mini": llama.cpp keeps them as size labels
        if label_params is not None and (
            (total_params < 0 and label_params < abs(total_params) // 8)
            or (total_params > 0 and abs(label_params - total_params) > 7 * total_params // 8)
        ):
            types.add("finetune")
            part = part[:-1] + part[-1].lower()
    if not types:
        types.add("size_label")
    return part


def model_id_components(model_id: str | None, total_params: int = 0) -> ModelId:
    """Split ``org/Name-Size-Finetune-Version`` as llama.cpp does (``SmolLM2-135M-Instruct`` ->
    basename ``SmolLM2``, size ``135M``, finetune ``Instruct``); all None for no id."""
    if model_id is None:
        return ModelId()
    if " " in model_id:  # a human-written name, not a hub id
        return ModelId(model_id)
    org: str | None
    if "/" in model_id:
        org, full_name = model_id.split("/", 1)
    else:
        org, full_name = None, model_id
    if org is not None and org.startswith("."):  # './name' or '../name' is a path, not an org
        org = None
    parts = [p for p in full_name.split("-") if p]
    kinds: list[set[str]] = [set() for _ in parts]
    for i, part in enumerate(parts):
        if _VERSION.fullmatch(part):
            kinds[i].add("version")
        elif _QUANT_TYPE.fullmatch(part):
            kinds[i].add("type")
            parts[i] = part.upper()
        elif i > 0 and _SIZE.fullmatch(part):
            parts[i] = _size_part(part, total_params, kinds[i])
        elif i > 0 and _FINETUNE.fullmatch(part):
            kinds[i].add("type" if total_params < 0 and part.lower() == "lora" else "finetune")
    # A number-based size label wins over word-based ones (mini, large, ...).
    if any(
        c.isdecimal() for p, k in zip(parts, kinds, strict=True) if "size_label" in k for c in p
    ):
        for p, k in zip(parts, kinds, strict=True):
            if "size_label" in k and all(c.isalpha() for c in p):
                k.remove("size_label")
    at_start = True
    for part, k in zip(parts, kinds, strict=True):
        if at_start and ((not k and part[0].isalpha()) or "version" in k):
            k.add("basename")
        else:
            at_start = False
            if not k:
                k.add("finetune")
    for k in reversed(kinds):  # a trailing version is not part of the basename
        if "basename" in k and len(k) > 1:
            k.remove("basename")
        else:
            break

    def joined(kind: str, *, unique: bool = False) -> str | None:
        chosen = [p for p, k in zip(parts, kinds, strict=True) if kind in k]
        return "-".join(dict.fromkeys(chosen) if unique else chosen) or None

    basename = joined("basename")
    size_label = joined("size_label", unique=True)
    finetune = joined("finetune")
    version = "-".join(
        p for p, k in zip(parts, kinds, strict=True) if "version" in k and "basename" not in k
    )
    if size_label is None and finetune is None and not version:
        basename = None  # too ambiguous
    return ModelId(full_name, org, basename, finetune, version or None, size_label)
