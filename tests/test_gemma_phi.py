"""Gemma 2/3 and Phi-3 behaviour beyond the golden files: what is dropped, trimmed, refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from family_fixtures import CASES, write_checkpoint

from qconv.conversion import plan_conversion
from qconv.errors import FormatError, SourceError
from qconv.model.architecture import Architecture, select_architecture
from qconv.model.config import ModelConfig
from qconv.model.transforms import GeneratedTensor


def arch_for(config: dict[str, Any]) -> Architecture:
    return select_architecture(ModelConfig.from_json(config))


def fake(name: str, values: np.ndarray) -> GeneratedTensor:
    return GeneratedTensor(name, values.astype(np.float32), "BF16")


def test_vision_tower_is_left_out_with_one_warning_naming_it(tmp_path: Path) -> None:
    model = write_checkpoint(CASES["gemma3-vlm"], tmp_path)
    conversion = plan_conversion(str(model), target="q8_0")
    towers = [w for w in conversion.warnings if "not converted" in w]
    assert len(towers) == 1
    assert "vision_tower" in towers[0] and "multi_modal_projector" in towers[0]
    assert all(p.name.startswith(("blk.", "token_embd", "output")) for p in conversion.plans)


def test_text_only_checkpoint_has_no_tower_warning(tmp_path: Path) -> None:
    model = write_checkpoint(CASES["gemma3"], tmp_path)
    assert not any("not converted" in w for w in plan_conversion(str(model)).warnings)


def test_gemma2_ignores_a_stored_lm_head() -> None:
    arch = arch_for({"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2"})
    tensors = [fake("lm_head.weight", np.ones((8, 4))), fake("model.norm.weight", np.ones(4))]
    assert [name for name, _ in arch.tensors(tensors)] == ["output_norm.weight"]


def test_every_gemma_norm_is_stored_plus_one() -> None:
    arch = arch_for({"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text"})
    names = [
        "model.layers.0.self_attn.q_norm.weight",
        "model.layers.0.post_feedforward_layernorm.weight",
        "model.norm.weight",
    ]
    values = np.array([0.5, -1.0, 0.0, 2.25], dtype=np.float32)
    for _, data in arch.tensors([fake(n, values) for n in names]):
        assert np.array_equal(data.read_rows(0, 1)[0], values + 1)


def _tokenizer_json(directory: Path, n_vocab: int, n_added: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "model": {"type": "BPE", "vocab": {f"t{i}": i for i in range(n_vocab)}},
        "added_tokens": [{"id": n_vocab + i, "content": f"<a{i}>"} for i in range(n_added)],
    }
    (directory / "tokenizer.json").write_text(json.dumps(document), encoding="utf-8")
    return directory


def test_gemma3_embedding_keeps_only_rows_the_tokenizer_has(tmp_path: Path) -> None:
    arch = arch_for({"architectures": ["Gemma3ForCausalLM"], "vocab_size": 12})
    rows = np.arange(12 * 4, dtype=np.float32).reshape(12, 4)
    model_dir = _tokenizer_json(tmp_path, 6, 1)
    [(name, data)] = arch.tensors([fake("model.embed_tokens.weight", rows)], model_dir)
    assert name == "token_embd.weight" and data.shape == (7, 4)
    assert np.array_equal(data.read_rows(0, 7), rows[:7])


def test_gemma3_without_tokenizer_files_names_them(tmp_path: Path) -> None:
    arch = arch_for({"architectures": ["Gemma3ForCausalLM"]})
    with pytest.raises(SourceError, match=r"tokenizer\.model.*tokenizer\.json"):
        arch.tensors([fake("model.embed_tokens.weight", np.ones((4, 4)))], tmp_path)


PHI3 = {
    "architectures": ["Phi3ForCausalLM"],
    "model_type": "phi3",
    "hidden_size": 64,
    "num_attention_heads": 2,
    "max_position_embeddings": 16384,
    "original_max_position_embeddings": 4096,
}


def test_phi3_longrope_factors_become_f32_tensors_and_attn_factor_follows_architecture() -> None:
    long_factors, short_factors = [1.5] * 16, [1.0] * 16
    config = {**PHI3, "rope_scaling": {"type": "longrope", "long_factor": long_factors,
                                        "short_factor": short_factors}}  # fmt: skip
    arch = arch_for(config)
    names = [name for name, _ in arch.extra_tensors()]
    assert names == ["rope_factors_long.weight", "rope_factors_short.weight"]
    header = arch.header()
    assert [kv.key for kv in header] == [
        "general.architecture",
        "phi3.rope.scaling.attn_factor",
        "general.type",
    ]
    assert header[1].value == pytest.approx((1 + np.log(4) / np.log(4096)) ** 0.5)


def test_phi3_factor_lists_of_the_wrong_length_are_a_format_error() -> None:
    config = {**PHI3, "rope_scaling": {"type": "longrope", "long_factor": [1.0] * 8,
                                        "short_factor": [1.0] * 8}}  # fmt: skip
    with pytest.raises(FormatError, match="long_factor.*16"):
        arch_for(config).extra_tensors()


def test_phi3_without_an_integer_original_context_is_a_format_error() -> None:
    arch = arch_for({**PHI3, "original_max_position_embeddings": "4k"})
    with pytest.raises(FormatError, match="original_max_position_embeddings"):
        arch.metadata(1)


def test_phi3_fused_projections_are_kept_whole() -> None:
    arch = arch_for(PHI3)
    tensors = [
        fake("model.layers.0.self_attn.qkv_proj.weight", np.ones((192, 64))),
        fake("model.layers.0.mlp.gate_up_proj.weight", np.ones((256, 64))),
    ]
    shapes = [(name, data.shape) for name, data in arch.tensors(tensors)]
    assert shapes == [("blk.0.attn_qkv.weight", (192, 64)), ("blk.0.ffn_up.weight", (256, 64))]


def test_gemma2_without_tokenizer_model_names_the_file(tmp_path: Path) -> None:
    model = write_checkpoint(CASES["gemma2"], tmp_path)
    (model / "tokenizer.model").unlink()
    with pytest.raises(SourceError, match=r"tokenizer\.model is missing"):
        plan_conversion(str(model))
    assert plan_conversion(str(model), no_vocab=True).plans


def test_phi3_gpt2_tokenizer_class_selects_bpe_even_beside_a_tokenizer_model(
    tmp_path: Path,
) -> None:
    model = write_checkpoint(CASES["phi4-mini"], tmp_path)
    spm = Path(__file__).parent / "golden" / "arch" / "llama2" / "tokenizer" / "tokenizer.model"
    (model / "tokenizer.model").write_bytes(spm.read_bytes())
    kvs = {kv.key: kv.value for kv in plan_conversion(str(model)).kvs}
    assert kvs["tokenizer.ggml.model"] == "gpt2"


def test_phi3_su_rope_scaling_is_read_as_longrope_as_transformers_renames_it() -> None:
    scaling = {"type": "su", "long_factor": [2.0] * 16, "short_factor": [1.0] * 16}
    header = arch_for({**PHI3, "rope_scaling": scaling}).header()
    assert header[1].key == "phi3.rope.scaling.attn_factor"
    assert header[1].value == pytest.approx((1 + np.log(4) / np.log(4096)) ** 0.5)


def test_gemma3_text_model_inside_the_multimodal_class_in_either_naming() -> None:
    """transformers >= 4.52 nests the text model as model.language_model; older checkpoints (and
    save_pretrained, which writes the legacy names) use language_model.model."""
    arch = arch_for({"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3"})
    names = [
        "language_model.model.layers.0.self_attn.q_proj.weight",
        "model.language_model.layers.1.self_attn.q_proj.weight",
        "model.vision_tower.vision_model.embeddings.patch_embedding.weight",
        "multi_modal_projector.mm_input_projection_weight",
    ]
    mapped = [name for name, _ in arch.tensors([fake(n, np.ones((4, 4))) for n in names])]
    assert mapped == ["blk.0.attn_q.weight", "blk.1.attn_q.weight"]
    warning = arch.skipped_towers([fake(n, np.ones((4, 4))) for n in names])
    assert warning is not None and "model.vision_tower, multi_modal_projector" in warning
