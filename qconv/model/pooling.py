"""Sentence-transformers pooling: what ``TextModel._try_set_pooling_type`` writes.

Embedding checkpoints (BERT, gte-Qwen2, Qwen3-Embedding) ship ``modules.json`` naming a Pooling
module whose ``config.json`` says how token states become one sentence vector; llama.cpp's converter
writes that as ``<arch>.pooling_type`` (base.py:2295-2333), plus config.json's
``classifier_pooling``, so llama-embedding pools as the model was trained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qconv.errors import FormatError, SourceError
from qconv.gguf.metadata import KV, kv_uint32
from qconv.model.config import ModelConfig
from qconv.model.spec import ArchSpec

__all__ = ["POOLING_TYPES", "pooling_keys", "pooling_type"]

POOLING_TYPES = {"mean": 1, "cls": 2, "lasttoken": 3}  # llama.cpp enum llama_pooling_type


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SourceError(f"{path}: cannot read ({e.strerror or e})") from e
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise FormatError(f"{path}: not valid JSON ({e})") from e


def pooling_type(root: Path) -> int | None:
    """The sentence-transformers pooling mode, or None when the folder has no Pooling module.

    Raises:
        FormatError: modules.json or the pooling config is malformed or names another mode.
    """
    modules_path = root / "modules.json"
    if not modules_path.is_file():
        return None
    modules = _json(modules_path)
    if not isinstance(modules, list):
        raise FormatError(f"{modules_path}: expected a list of modules")
    pooling_dir = None
    for module in modules:
        kind = module.get("type") if isinstance(module, dict) else None
        if isinstance(kind, str) and kind.endswith("Pooling"):
            pooling_dir = module.get("path")
            break
    if pooling_dir is None:
        return None
    if not isinstance(pooling_dir, str) or ".." in Path(pooling_dir).parts:
        raise FormatError(f"{modules_path}: the Pooling module's 'path' must be a sub-folder")
    config_path = root / pooling_dir / "config.json"
    pooling = _json(config_path)
    if not isinstance(pooling, dict):
        raise FormatError(f"{config_path}: expected a JSON object")
    for mode, flag in (("mean", "mean_tokens"), ("cls", "cls_token"), ("lasttoken", "lasttoken")):
        if pooling.get(f"pooling_mode_{flag}"):
            return POOLING_TYPES[mode]
    named = pooling.get("pooling_mode")
    if isinstance(named, str) and named in POOLING_TYPES:
        return POOLING_TYPES[named]
    raise FormatError(
        f"{config_path}: llama.cpp pools with mean, cls or last token only; this model pools "
        "otherwise"
    )


def pooling_keys(spec: ArchSpec, config: ModelConfig) -> list[KV]:
    """``<arch>.pooling_type`` from modules.json and ``classifier.pooling_type`` from config.json.

    Raises:
        FormatError: a malformed pooling file or an unsupported mode.
    """
    kvs = []
    if config.path is not None and (pooling := pooling_type(config.path.parent)) is not None:
        kvs.append(kv_uint32(f"{spec.name}.pooling_type", pooling))
    if (classifier := config.optional_str("classifier_pooling")) is not None:
        if classifier not in ("cls", "mean"):
            raise FormatError(f"{config.label}: 'classifier_pooling' must be cls or mean")
        kvs.append(kv_uint32(f"{spec.name}.classifier.pooling_type", POOLING_TYPES[classifier]))
    return kvs
