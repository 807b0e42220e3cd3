"""Sampling defaults and llama.cpp's metadata override file, as gguf-py's Metadata.load reads them.

generation_config.json gives ``general.sampling.*`` (``temperature`` -> temp,
``repetition_penalty`` -> penalty_repeat, ...). convert_hf_to_gguf's ``--metadata FILE`` is a
JSON object keyed by GGUF key names (``general.name``, ``general.sampling.top_k``,
``general.base_models`` as a list of mappings, ...) whose values replace what the card, names
and generation config gave, before the file is written: each lands in llama.cpp's slot and type,
and ``null`` removes a value. qconv's ``--metadata-file`` takes those keys the same way (untyped
values only; a ``{"type", "value"}`` entry and every other key stay plain KVs set afterwards,
see qconv.gguf.metadata).
"""

from __future__ import annotations

import math
from typing import Any

from qconv.errors import UsageError
from qconv.gguf.constants import INTEGER_VALUE_RANGES, GGUFValueType
from qconv.gguf.metadata import FLOAT32_MAX

__all__ = [
    "OVERRIDE_FIELDS",
    "SAMPLING",
    "check_override",
    "is_override_key",
    "sampling_value",
]

_I32, _F32, _STR = GGUFValueType.INT32, GGUFValueType.FLOAT32, GGUFValueType.STRING
# generation_config.json keys (the first present wins) -> general.sampling.<name>, in the order
# set_gguf_meta_model writes them, with gguf-py's add_sampling_* types.
SAMPLING: tuple[tuple[tuple[str, ...], str, GGUFValueType], ...] = (
    (("sequence",), "sequence", _STR),
    (("top_k",), "top_k", _I32),
    (("top_p",), "top_p", _F32),
    (("min_p",), "min_p", _F32),
    (("xtc_probability",), "xtc_probability", _F32),
    (("xtc_threshold",), "xtc_threshold", _F32),
    (("temperature",), "temp", _F32),
    (("penalty_last_n",), "penalty_last_n", _I32),
    (("penalty_repeat", "repetition_penalty"), "penalty_repeat", _F32),
    (("mirostat",), "mirostat", _I32),
    (("mirostat_tau",), "mirostat_tau", _F32),
    (("mirostat_eta",), "mirostat_eta", _F32),
)
SAMPLING_TYPES = {f"general.sampling.{name}": vtype for _, name, vtype in SAMPLING}

# Override keys gguf-py's Metadata.load reads -> the field each sets. general.license is not
# one of them (llama.cpp ignores it in the file; qconv sets it as a plain KV).
OVERRIDE_FIELDS: dict[str, str] = {
    "general.name": "name",
    "general.author": "author",
    "general.version": "version",
    "general.organization": "organization",
    "general.finetune": "finetune",
    "general.basename": "basename",
    "general.description": "description",
    "general.quantized_by": "quantized_by",
    "general.size_label": "size_label",
    "general.license.name": "license_name",
    "general.license.link": "license_link",
    "general.url": "url",
    "general.doi": "doi",
    "general.uuid": "uuid",
    "general.repo_url": "repo_url",
    "general.source.url": "source_url",
    "general.source.doi": "source_doi",
    "general.source.uuid": "source_uuid",
    "general.source.repo_url": "source_repo_url",
    "general.base_models": "base_models",
    "general.datasets": "datasets",
    "general.tags": "tags",
    "general.languages": "languages",
}
_LISTS = ("general.tags", "general.languages")


def sampling_value(value: Any, vtype: GGUFValueType) -> Any:
    """The value as gguf-py packs it, or None where its struct.pack would fail."""
    if vtype == _STR:
        return value if isinstance(value, str) else None
    if vtype == _I32:
        low, high = INTEGER_VALUE_RANGES[_I32]
        ok = isinstance(value, int) and low <= value <= high
        return int(value) if ok else None
    if not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if not math.isfinite(number) or abs(number) <= FLOAT32_MAX else None


def is_override_key(key: str, value: Any) -> bool:
    """Whether convert_hf_to_gguf's ``--metadata`` file would read ``key`` (a mapping value is
    qconv's explicitly typed form, which stays a plain KV)."""
    if isinstance(value, dict):
        return False
    return key in OVERRIDE_FIELDS or key in SAMPLING_TYPES


def check_override(override: dict[str, Any], where: str) -> None:
    """Refuse values llama.cpp could not write (it would fail mid-conversion).

    Raises:
        UsageError: a value of the wrong kind for its key.
    """
    for key, value in override.items():
        if value is None:
            continue  # null clears the value, as in llama.cpp
        if key in SAMPLING_TYPES:
            ok = sampling_value(value, SAMPLING_TYPES[key]) is not None and not isinstance(
                value, bool
            )
            kind = {_STR: "a string", _I32: "an int32", _F32: "a number"}[SAMPLING_TYPES[key]]
        elif key in _LISTS:
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            kind = "a list of strings"
        elif key in ("general.base_models", "general.datasets"):
            ok = isinstance(value, list) and all(
                isinstance(e, dict) and all(isinstance(v, str) for v in e.values()) for e in value
            )
            kind = "a list of {key: string} objects"
        else:
            ok, kind = isinstance(value, str), "a string"
        if not ok:
            raise UsageError(f"{where}: {key} must be {kind} (as llama.cpp's --metadata file)")
