"""BERT embedding models (BertModel, as sentence-transformers ships them): the `bert` architecture.

conversion/bert.py ``BertModel``: the ``bert.`` prefix and the pooler / masked-LM / NSP heads are
dropped, ``.gamma`` / ``.beta`` read as ``.weight`` / ``.bias``; attention is not causal, and the
pooling llama-embedding applies comes from sentence-transformers' ``modules.json`` and
``1_Pooling/config.json`` (``TextModel._try_set_pooling_type``, base.py:2295-2333).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qconv.errors import FormatError, SourceError
from qconv.gguf.metadata import KV, kv_bool, kv_uint32
from qconv.model.config import ModelConfig
from qconv.model.spec import ArchSpec

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


def bert_keys(spec: ArchSpec, config: ModelConfig) -> list[KV]:
    """``BertModel.set_gguf_parameters`` after super(): non-causal attention, pooling type."""
    kvs = [kv_bool(f"{spec.name}.attention.causal", False)]
    if config.path is not None and (pooling := pooling_type(config.path.parent)) is not None:
        kvs.append(kv_uint32(f"{spec.name}.pooling_type", pooling))
    if (classifier := config.optional_str("classifier_pooling")) is not None:
        if classifier not in ("cls", "mean"):
            raise FormatError(f"{config.label}: 'classifier_pooling' must be cls or mean")
        kvs.append(kv_uint32(f"{spec.name}.classifier.pooling_type", POOLING_TYPES[classifier]))
    return kvs


SPEC = ArchSpec(
    name="bert",
    hf_architectures=("BertModel",),
    model_types=("bert",),
    layer_prefix="encoder.layer",
    name_rewrites=((r"^bert\.", ""), (r"\.gamma$", ".weight"), (r"\.beta$", ".bias")),
    dropped=(r"embeddings\.position_ids", r"pooler\.dense\..*", r"cls\..*"),
    global_tensors={
        "embeddings.word_embeddings": "token_embd",
        "embeddings.token_type_embeddings": "token_types",
        "embeddings.position_embeddings": "position_embd",
        "embeddings.LayerNorm": "token_embd_norm",
    },
    layer_tensors={
        "attention.self.query": "attn_q",
        "attention.self.key": "attn_k",
        "attention.self.value": "attn_v",
        "attention.output.dense": "attn_output",
        "attention.output.LayerNorm": "attn_output_norm",
        "intermediate.dense": "ffn_up",
        "output.dense": "ffn_down",
        "output.LayerNorm": "layer_output_norm",
    },
    # transformers.BertConfig defaults, which convert_hf_to_gguf.py sees through AutoConfig.
    defaults={
        "vocab_size": 30522,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
    },
    family_keys=bert_keys,
)
