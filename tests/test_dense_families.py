"""Behaviour of the dense families beyond byte equality (tests/test_family_goldens.py proves that):
multimodal checkpoints, and inputs llama.cpp's converter would reject."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from family_fixtures import CASES, write_checkpoint

from qconv.conversion import plan_conversion
from qconv.errors import SourceError


def _kv(conversion: object, key: str) -> object:
    return next(kv.value for kv in conversion.kvs if kv.key == key)  # type: ignore[attr-defined]


def test_multimodal_checkpoint_converts_the_text_model_and_names_what_it_leaves_out(
    tmp_path: Path,
) -> None:
    model = write_checkpoint(CASES["mistral3_h256"], tmp_path)
    conversion = plan_conversion(str(model), target="bf16")
    names = [plan.name for plan in conversion.plans]
    assert "blk.0.attn_q.weight" in names and "token_embd.weight" in names
    assert not [n for n in names if "vision" in n or "projector" in n]
    assert "multi_modal_projector, vision_tower" in conversion.warnings[0]
    assert "not converted" in conversion.warnings[0]


def test_ministral3_without_yarn_rope_is_refused_naming_the_key(tmp_path: Path) -> None:
    model = write_checkpoint(CASES["ministral3_yarn"], tmp_path)
    config = json.loads((model / "config.json").read_text())
    config["text_config"]["rope_parameters"]["rope_type"] = "linear"
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(SourceError, match="rope_parameters.*yarn"):
        plan_conversion(str(model), target="bf16")


def test_glm4_tokenizer_without_its_special_tokens_is_refused(tmp_path: Path) -> None:
    model = write_checkpoint(CASES["glm4_rotary_quarter"], tmp_path)
    tok = json.loads((model / "tokenizer.json").read_text())
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["content"] != "<|user|>"]
    (model / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(SourceError, match=r"tokenizer\.json.*'<\|user\|>'"):
        plan_conversion(str(model), target="bf16")


def test_glm4_names_its_pre_tokenizer_unless_the_user_does(tmp_path: Path) -> None:
    model = write_checkpoint(CASES["glm4_rotary_quarter"], tmp_path)
    assert _kv(plan_conversion(str(model), target="bf16"), "tokenizer.ggml.pre") == "glm4"
    forced = plan_conversion(str(model), target="bf16", tokenizer_pre="llama-bpe")
    assert _kv(forced, "tokenizer.ggml.pre") == "llama-bpe"


@pytest.mark.parametrize("how", ["folder", "readme"])
def test_qwen3_reranker_is_refused_rather_than_written_as_a_decoder(
    tmp_path: Path, how: str
) -> None:
    model = write_checkpoint(CASES["qwen3_embedding_lasttoken"], tmp_path)
    if how == "folder":
        model = model.rename(tmp_path / "Qwen3-Reranker-0.6B")
    else:
        (model / "README.md").write_text("---\nlicense: apache-2.0\n---\n# Qwen3-Reranker-0.6B\n")
    with pytest.raises(SourceError, match="Qwen3 reranker.*convert_hf_to_gguf.py"):
        plan_conversion(str(model), target="bf16")
