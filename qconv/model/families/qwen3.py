"""Qwen3 (dense): the `qwen3` GGUF architecture, with per-head RMS norms on q and k.

Qwen3Model (conversion/qwen.py:159-255) is Qwen2Model (pooling type from modules.json) plus a
reranker mode: a checkpoint its README heading or path names a Qwen3 reranker, or whose class is a
sequence classifier, is written as a ranking model (a two-row ``cls_out`` head cut from the output
matrix, rank pooling, a "rerank" chat template). qconv does not write that form yet, so such a
checkpoint is refused rather than written as a plain decoder llama.cpp would rank with wrongly.
"""

from __future__ import annotations

from pathlib import Path

from qconv.errors import SourceError
from qconv.gguf.metadata import KV
from qconv.model.config import ModelConfig
from qconv.model.pooling import pooling_keys
from qconv.model.spec import ATTENTION_TENSORS, BASE_TENSORS, ArchSpec, derive_kv_heads

_RERANKER_NAMES = ("qwen3-reranker", "qwen3-vl-reranker")


def _is_reranker(config: ModelConfig) -> bool:
    """Qwen3Model._is_qwen3_reranker, on what qconv sees of the checkpoint."""
    folder = config.path.parent if config.path is not None else None
    readme = folder / "README.md" if folder is not None else None
    if readme is not None and readme.is_file():
        text = readme.read_text(encoding="utf-8", errors="replace").lower()
        if any(f"# {name}" in text for name in _RERANKER_NAMES):
            return True
    arch = config.architectures[0] if config.architectures else ""
    hints = [str(folder or ""), config.model_type, arch]
    if any(name in hint.lower() for hint in hints for name in _RERANKER_NAMES):
        return True
    return "sequenceclassification" in arch.lower()


def qwen3_keys(spec: ArchSpec, config: ModelConfig) -> list[KV]:
    """pooling type from sentence-transformers' modules.json; rerankers refused."""
    if _is_reranker(config):
        folder = config.path.parent if config.path is not None else Path(".")
        raise SourceError(
            f"{folder}: a Qwen3 reranker (named so by its README.md, folder or class), which "
            "llama.cpp's converter writes as a ranking model; qconv does not write that form "
            "yet, so use convert_hf_to_gguf.py for it"
        )
    return pooling_keys(spec, config)


SPEC = ArchSpec(
    name="qwen3",
    hf_architectures=("Qwen3ForCausalLM",),
    model_types=("qwen3",),
    layer_tensors={
        **BASE_TENSORS,
        **ATTENTION_TENSORS,
        "self_attn.q_norm": "attn_q_norm",
        "self_attn.k_norm": "attn_k_norm",
    },
    derive=derive_kv_heads,
    defaults={
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "head_dim": 128,
        "num_key_value_heads": 32,
        "tie_word_embeddings": True,
    },
    family_keys=qwen3_keys,
)
