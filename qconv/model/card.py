"""``general.*`` metadata from the checkpoint, as llama.cpp's converter writes it.

A port of gguf-py's ``Metadata.load`` + ``Metadata.set_gguf_meta_model`` and the surrounding steps
of convert_hf_to_gguf's ``prepare_metadata``: the README.md model card's front matter
(qconv.model.front_matter), config.json's ``_name_or_path`` and the folder name (split by
qconv.model.model_id) give the name, basename, size label, finetune, version, organization,
license, base models, datasets, tags and languages; generation_config.json gives the
``general.sampling.*`` defaults llama.cpp samples with. Where llama.cpp would crash on a value
(a number where the card should hold text, a float top_k) qconv leaves the key out instead.
Keys of llama.cpp's own metadata override file given in ``--metadata-file`` apply in place
(qconv.model.metadata_override); ``--metadata`` sets any key afterwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qconv.errors import SourceError
from qconv.gguf.constants import GGUFValueType
from qconv.gguf.metadata import KV, kv_array, kv_string, kv_uint32
from qconv.model.front_matter import parse_front_matter
from qconv.model.metadata_override import OVERRIDE_FIELDS, SAMPLING, sampling_value
from qconv.model.model_id import id_to_title, model_id_components

__all__ = [
    "general_metadata",
    "parameter_size_label",
    "read_card",
    "read_generation_config",
    "size_label",
]

_AUTHORSHIP = (
    "name", "author", "version", "organization", "description", "finetune", "basename",
    "size_label",
)  # fmt: skip
_BASE_MODEL_KEYS = ("base_model", "base_models", "base_model_sources")
_DATASET_KEYS = ("datasets", "dataset", "dataset_sources")
# set_gguf_meta_model's order after general.name: (field, GGUF key), all strings.
_STRING_KEYS = (
    ("author", "general.author"),
    ("version", "general.version"),
    ("organization", "general.organization"),
    ("finetune", "general.finetune"),
    ("basename", "general.basename"),
    ("description", "general.description"),
    ("quantized_by", "general.quantized_by"),
    ("size_label", "general.size_label"),
    ("license", "general.license"),
    ("license_name", "general.license.name"),
    ("license_link", "general.license.link"),
    ("url", "general.url"),
    ("doi", "general.doi"),
    ("uuid", "general.uuid"),
    ("repo_url", "general.repo_url"),
    ("source_url", "general.source.url"),
    ("source_doi", "general.source.doi"),
    ("source_uuid", "general.source.uuid"),
    ("source_repo_url", "general.source.repo_url"),
)
# A base model's or dataset's keys, in the order llama.cpp writes them.
_ENTRY_KEYS = (
    "name", "author", "version", "organization", "description", "url", "doi", "uuid", "repo_url",
)  # fmt: skip
_STR = GGUFValueType.STRING


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


# --- metadata assembly (gguf-py Metadata.load + ModelBase.prepare_metadata) -------------------

# (field, model card key): the first key present in the card sets the field, in gguf-py's order
# (apply_metadata_heuristic): llama.cpp's own names, their model_* spellings, then the keys
# TheBloke-style cards use.
_CARD_KEYS: tuple[tuple[str, str], ...] = (
    *((f, f) for f in _AUTHORSHIP),
    ("source_url", "url"),
    ("source_doi", "doi"),
    ("source_uuid", "uuid"),
    ("source_repo_url", "repo_url"),
    *((f, f"model_{f}") for f in _AUTHORSHIP),
    ("source_url", "model_url"),
    ("source_doi", "model_doi"),
    ("source_uuid", "model_uuid"),
    ("source_repo_url", "model_repo_url"),
    ("author", "model_creator"),
    ("basename", "model_type"),
    ("license", "license"),
    ("license_name", "license_name"),
    ("license_link", "license_link"),
)
# Fields the name heuristics fill when the card left them unset.
_ID_FIELDS = ("organization", "basename", "finetune", "version", "size_label")
_URL_SCHEMES = ("http://", "https://", "ssh://")
_HF_URL = re.compile(r"https?://huggingface.co/([^/]+/[^/]+)$")


def _first_present(card: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((card[k] for k in keys if k in card), None)


def _source_entries(card: dict[str, Any], keys: tuple[str, ...], total: int) -> list[Any] | None:
    """base_model / datasets entries as gguf-py builds them: a hub id or URL becomes name,
    organization, version and repo_url; a mapping is taken as written; None when no key."""
    if not any(k in card for k in keys):
        return None
    value = _first_present(card, keys)
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    entries: list[Any] = []
    for item in items:
        entry: dict[str, Any] = {}
        if isinstance(item, dict):
            entry = item
        elif isinstance(item, str):
            model_id: str | None = item
            from_url = item.startswith(_URL_SCHEMES)
            if from_url:
                entry["repo_url"] = item
                match = _HF_URL.match(item) if "huggingface.co" in item else None
                model_id = match.group(1) if match else None
            if model_id is not None:
                entry |= _entry_from_id(model_id, total, with_url=not from_url)
        entries.append(entry)  # any other entry is an empty one, still counted (as llama.cpp)
    return entries


def _entry_from_id(model_id: str, total: int, *, with_url: bool) -> dict[str, str]:
    parts = model_id_components(model_id, total)
    entry: dict[str, str] = {}
    if parts.full_name is not None:
        entry["name"] = id_to_title(parts.full_name)
    if parts.organization is not None:
        entry["organization"] = id_to_title(parts.organization)
    if parts.version is not None:
        entry["version"] = parts.version
    if with_url and parts.organization is not None and parts.full_name is not None:
        entry["repo_url"] = f"https://huggingface.co/{parts.organization}/{parts.full_name}"
    return entry


def _apply_model_id(fields: dict[str, Any], model_id: str, total: int) -> None:
    parts = model_id_components(model_id, total)
    if fields.get("name") is None and parts.full_name is not None:
        fields["name"] = id_to_title(parts.full_name)
    if fields.get("organization") is None and parts.organization is not None:
        fields["organization"] = id_to_title(parts.organization)
    for name in _ID_FIELDS[1:]:
        if fields.get(name) is None and getattr(parts, name) is not None:
            fields[name] = getattr(parts, name)


def read_generation_config(model_dir: Path) -> dict[str, Any]:
    """generation_config.json, or {} when missing or not valid JSON (llama.cpp skips those)."""
    try:
        document = json.loads((model_dir / "generation_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def read_card(model_dir: Path) -> dict[str, Any]:
    """The model card's front matter; {} without a README.md.

    Raises:
        SourceError: the README cannot be read.
    """
    readme = model_dir / "README.md"
    if not readme.is_file():
        return {}
    try:
        return parse_front_matter(readme.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(f"{readme}: cannot read the model card ({e})") from e


def general_metadata(
    model_dir: Path | None,
    config: dict[str, Any],
    n_params: int,
    folder_name: str,
    label: str | None = None,
    override: dict[str, Any] | None = None,
) -> list[KV]:
    """``general.*`` KVs (after general.architecture/type), in llama.cpp's order and types.

    Port of gguf-py's ``Metadata.load`` and ``set_gguf_meta_model`` as convert_hf_to_gguf calls
    them: the model card, then config.json's ``_name_or_path`` (``config``), then the folder name
    fill authorship and naming fields, each only where the earlier source left it unset;
    generation_config.json gives the sampling defaults. ``n_params`` is the element count of
    every tensor written, ``label`` the size label computed from the tensors, used only when no
    name or card gives one. ``override`` holds the keys of a llama.cpp metadata override file
    (qconv.model.metadata_override), applied after all of these, as llama.cpp applies them.

    Raises:
        SourceError: the model card exists but cannot be read.
    """
    card = read_card(model_dir) if model_dir is not None else {}
    fields: dict[str, Any] = {}
    for name, key in _CARD_KEYS:
        if key in card and fields.get(name) is None:
            fields[name] = card[key]
    fields["base_models"] = _source_entries(card, _BASE_MODEL_KEYS, n_params)
    fields["datasets"] = _source_entries(card, _DATASET_KEYS, n_params)
    for name, keys in (
        ("tags", ("tags", "pipeline_tag")),
        ("languages", ("languages", "language")),
    ):
        if any(card.get(k) is not None for k in keys):
            fields[name] = [v for k in keys for v in _as_items(card.get(k))]
    name_or_path = config.get("_name_or_path")
    if isinstance(name_or_path, str) and name_or_path.count("/") <= 1:
        _apply_model_id(fields, name_or_path, n_params)
    _apply_model_id(fields, folder_name, n_params)
    override = override or {}
    for key, value in override.items():
        if key in OVERRIDE_FIELDS:
            fields[OVERRIDE_FIELDS[key]] = value
    if not isinstance(fields.get("name"), str):
        fields["name"] = folder_name  # prepare_metadata's last resort
    if fields.get("size_label") is None and n_params > 0:
        fields["size_label"] = label or size_label(n_params)
    sampling = read_generation_config(model_dir) if model_dir is not None else {}
    return _sampling_kvs(sampling, override) + _authorship_kvs(fields)


def _as_items(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else value if isinstance(value, list) else []


def _sampling_kvs(config: dict[str, Any], override: dict[str, Any]) -> list[KV]:
    kvs = []
    for keys, name, vtype in SAMPLING:
        value = _first_present(config, keys)
        value = sampling_value(override.get(f"general.sampling.{name}", value), vtype)
        if value is not None:
            kvs.append(KV(f"general.sampling.{name}", vtype, value))
    return kvs


def _entry_kvs(prefix: str, entries: list[Any]) -> list[KV]:
    kvs = [kv_uint32(f"{prefix}.count", len(entries))]
    for index, entry in enumerate(entries):
        kvs += [
            kv_string(f"{prefix}.{index}.{key}", entry[key])
            for key in _ENTRY_KEYS
            if isinstance(entry.get(key), str) and entry[key]
        ]
    return kvs


def _authorship_kvs(fields: dict[str, Any]) -> list[KV]:
    # gguf-py's add_string drops empty strings: a name of "" (config.json "_name_or_path": "")
    # leaves the file without general.name, as llama.cpp's does.
    kvs = []
    for name, key in (("name", "general.name"), *_STRING_KEYS):
        value = fields.get(name)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = ",".join(value)  # a list of licenses
        if isinstance(value, str) and value:
            kvs.append(kv_string(key, value))
    if fields.get("base_models") is not None:
        kvs += _entry_kvs("general.base_model", fields["base_models"])
    if fields.get("datasets") is not None:
        kvs += _entry_kvs("general.dataset", fields["datasets"])
    for name in ("tags", "languages"):
        if items := [v for v in fields.get(name) or [] if isinstance(v, str)]:
            kvs.append(kv_array(f"general.{name}", items, _STR))
    return kvs
