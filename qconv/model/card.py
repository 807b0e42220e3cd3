"""``general.*`` metadata from the checkpoint: its name, size label, license and base models.

Sources, as llama.cpp's converter (gguf-py ``Metadata.load``) uses them: the README.md model card's
YAML front matter (license, base_model, tags, language, model_name), then the folder or repo name.
Only the plain YAML that model cards use is read (``key: value`` and ``- item`` lists), so no YAML
dependency is needed. Users override anything with ``--metadata``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qconv.errors import SourceError
from qconv.gguf.constants import GGUFValueType
from qconv.gguf.metadata import KV, kv_array, kv_string, kv_uint32

__all__ = [
    "general_metadata",
    "id_to_title",
    "parameter_size_label",
    "read_front_matter",
    "size_label",
]

_VERSION_OR_NUMBER = re.compile(r"^(v\d+(?:\.\d+)*|\d.*)$")


def id_to_title(text: str) -> str:
    """``tiny-llama3`` -> ``Tiny Llama3``: lowercase words capitalised, versions and sizes kept."""
    words = text.strip().replace("-", " ").split()
    return " ".join(
        w.title() if w.islower() and not _VERSION_OR_NUMBER.match(w) else w for w in words
    )


def size_label(n_params: int) -> str:
    """Parameter count in llama.cpp's notation (``28K``, ``1.2B``): at least two digits."""
    scales = ((1e12, 1e-12, "T"), (1e9, 1e-9, "B"), (1e6, 1e-6, "M"), (0.0, 1e-3, "K"))
    scale, suffix = next((s, name) for limit, s, name in scales if n_params > limit or not limit)
    scaled = n_params * scale
    decimals = max(2 - len(str(round(scaled)).lstrip("0")), 0)
    return f"{scaled:.{decimals}f}{suffix}"


def parameter_size_label(tensors: Iterable[tuple[str, tuple[int, ...]]]) -> str | None:
    """The size label of a file's tensors, ``<experts>x<params>`` when it stacks experts.

    Mirrors gguf-py's ``get_total_parameter_count`` + ``size_label``: a 3-D ``*_exps.*`` tensor
    counts once per expert (its size over its expert count) and the label is the average expert
    count times the parameters one token's path through shared and one expert's weights holds.
    None when there are no parameters.
    """
    total = shared = per_expert = expert_sum = n_expert_tensors = 0
    for name, shape in tensors:
        size = 1
        for dim in shape:
            size *= dim
        total += size
        if "_exps." in name and len(shape) >= 3:
            # NumPy order: the expert axis is shape[0] for weights (ne[2]), shape[-2] for biases.
            n_expert = shape[-2] if ".bias" in name else shape[-3]
            per_expert += size // n_expert
            expert_sum += n_expert
            n_expert_tensors += 1
        else:
            shared += size
    if total <= 0:
        return None
    if n_expert_tensors == 0 or expert_sum // n_expert_tensors == 0:
        return size_label(total)
    return f"{expert_sum // n_expert_tensors}x{size_label(shared + per_expert)}"


def _scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def read_front_matter(readme: Path) -> dict[str, Any]:
    """The YAML front matter of a model card: top-level scalars and lists of scalars.

    Raises:
        SourceError: the README cannot be read.
    """
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(f"{readme}: cannot read the model card ({e})") from e
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    card: dict[str, Any] = {}
    key: str | None = None
    for line in lines[1:]:
        if line.strip() == "---":
            break
        if line.startswith((" ", "-")) and key is not None and line.strip().startswith("- "):
            if isinstance(card.get(key), list):
                card[key].append(_scalar(line.strip()[2:]))
            continue
        name, sep, value = line.partition(":")
        if not sep or line.startswith((" ", "#")):
            key = None
            continue
        key = name.strip()
        card[key] = _scalar(value) if value.strip() else []
    return card


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value] if isinstance(value, list) else []


def _base_model_kvs(ids: list[str]) -> list[KV]:
    kvs = [kv_uint32("general.base_model.count", len(ids))]
    for index, repo_id in enumerate(ids):
        prefix = f"general.base_model.{index}"
        org, _, model = repo_id.rpartition("/")
        kvs.append(kv_string(f"{prefix}.name", id_to_title(model)))
        if org:
            kvs.append(kv_string(f"{prefix}.organization", id_to_title(org)))
        kvs.append(kv_string(f"{prefix}.repo_url", f"https://huggingface.co/{repo_id}"))
    return kvs


def general_metadata(
    model_dir: Path | None,
    config: dict[str, Any],
    n_params: int,
    name_hint: str,
    label: str | None = None,
) -> list[KV]:
    """``general.*`` KVs (after general.architecture/type), in llama.cpp's order.

    ``n_params`` is the element count of every tensor written (llama.cpp counts the output file's
    tensors); ``name_hint`` the folder name or hub repo id, used when the card names no model.

    Raises:
        SourceError: the model card exists but cannot be read.
    """
    card: dict[str, Any] = {}
    if model_dir is not None and (model_dir / "README.md").is_file():
        card = read_front_matter(model_dir / "README.md")
    name = card.get("model_name") if isinstance(card.get("model_name"), str) else None
    if name is None:
        hint = name_hint.rstrip("/").rpartition("/")[2] or str(config.get("model_type", "model"))
        name = id_to_title(hint)
    kvs = [kv_string("general.name", name)]
    if n_params > 0:
        kvs.append(kv_string("general.size_label", label or size_label(n_params)))
    if licenses := _as_list(card.get("license")):
        kvs.append(kv_string("general.license", ",".join(licenses)))
    for card_key, gguf_key in (("license_name", "license.name"), ("license_link", "license.link")):
        if isinstance(card.get(card_key), str) and card[card_key]:
            kvs.append(kv_string(f"general.{gguf_key}", card[card_key]))
    if base_models := _as_list(card.get("base_model")):
        kvs += _base_model_kvs(base_models)
    for card_key, gguf_key in (("tags", "tags"), ("language", "languages")):
        if items := _as_list(card.get(card_key)):
            kvs.append(kv_array(f"general.{gguf_key}", items, GGUFValueType.STRING))
    return kvs
