"""Mixture-of-experts checkpoints: what qconv refuses, and what --dry-run shows of expert stacks.

Byte equality with llama.cpp is proven by tests/test_family_goldens.py on the cases of
tests/family_cases/moe.py; these tests cover the paths the goldens cannot: bad checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from family_fixtures import CASES, fuse_experts, read_skeleton, write_checkpoint
from synthetic import tensor_values, write_safetensors
from typer.testing import CliRunner

from qconv import convert
from qconv.cli import app
from qconv.errors import SourceError
from qconv.model.card import parameter_size_label
from qconv.plan.plan import keeps_f32

runner = CliRunner()
CASE = CASES["qwen3moe_h64"]  # 2 layers, 4 experts, hidden 64, moe_intermediate_size 32


def _write(tmp_path: Path, tensors: dict[str, tuple[str, np.ndarray]]) -> Path:
    config, _ = read_skeleton(CASE)
    model = write_checkpoint(CASE, tmp_path)
    (model / "config.json").write_text(json.dumps(config), encoding="utf-8")
    write_safetensors(model / "model.safetensors", dict(sorted(tensors.items())))
    return model


def _values() -> dict[str, tuple[str, np.ndarray]]:
    _, shapes = read_skeleton(CASE)
    return {name: ("BF16", tensor_values(name, shape, 0)) for name, shape in shapes}


def test_dry_run_shows_how_many_sources_each_stack_reads(tmp_path: Path) -> None:
    model = write_checkpoint(CASE, tmp_path)
    result = runner.invoke(app, ["convert", str(model), "-t", "q4_k_m", "--dry-run"])
    assert result.exit_code == 0, result.output
    stacks = [line for line in result.stdout.splitlines() if "_exps.weight" in line]
    assert len(stacks) == 6  # 2 layers × down, gate, up
    assert all("BF16 ×4" in line and "4×" in line for line in stacks)
    router = next(line for line in result.stdout.splitlines() if "ffn_gate_inp.weight" in line)
    assert "BF16 ×" not in router and "F32" in router


@pytest.mark.parametrize(
    ("name", "shape", "kept"),
    [
        ("blk.0.ffn_gate_inp.weight", (4, 64), True),
        ("blk.3.ffn_gate_inp_shexp.weight", (1, 64), True),
        ("blk.0.ffn_gate_exps.weight", (4, 32, 64), False),
        ("blk.0.ffn_gate_shexp.weight", (96, 64), False),
    ],
)
def test_routers_are_kept_f32_as_the_converter_forces(
    name: str, shape: tuple[int, ...], kept: bool
) -> None:
    assert (keeps_f32(name, shape) is not None) is kept


def test_size_label_counts_one_expert_per_token_path() -> None:
    # gguf-py: expert tensors count size / n_expert; label = "<n_expert>x<shared + per expert>".
    tensors = [("token_embd.weight", (1000, 100)), ("blk.0.ffn_up_exps.weight", (8, 50, 100))]
    assert parameter_size_label(tensors) == "8x105K"
    assert parameter_size_label([("token_embd.weight", (1000, 100))]) == "100K"


def test_missing_expert_is_refused_naming_the_layer(tmp_path: Path) -> None:
    values = _values()
    del values["model.layers.1.mlp.experts.2.up_proj.weight"]
    with pytest.raises(SourceError, match="layer 1 has 11 of its 12 expert tensors"):
        convert(str(_write(tmp_path, values)), tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_expert_beyond_the_configured_count_is_refused(tmp_path: Path) -> None:
    values = _values()
    values["model.layers.0.mlp.experts.4.up_proj.weight"] = values[
        "model.layers.0.mlp.experts.0.up_proj.weight"
    ]
    with pytest.raises(SourceError, match=r"experts\.4\.up_proj.*outside the 4 experts"):
        convert(str(_write(tmp_path, values)), tmp_path / "out.gguf")


def test_fused_experts_that_do_not_split_in_two_are_refused(tmp_path: Path) -> None:
    values = fuse_experts(_values())
    name = "model.layers.0.mlp.experts.gate_up_proj"
    values[name] = ("BF16", np.zeros((4, 63, 64), dtype=np.float32))
    with pytest.raises(SourceError, match=rf"{name}.*\[4, 63, 64\].*2 equal parts"):
        convert(str(_write(tmp_path, values)), tmp_path / "out.gguf")


def test_dense_mlp_in_a_qwen3moe_checkpoint_is_refused(tmp_path: Path) -> None:
    # gguf-py's qwen3moe tensor list has no dense ffn_gate: llama.cpp's converter refuses it too.
    values = _values()
    values["model.layers.1.mlp.gate_proj.weight"] = ("BF16", np.zeros((96, 64), np.float32))
    result = runner.invoke(app, ["convert", str(_write(tmp_path, values)), "--dry-run"])
    assert result.exit_code == 3
    assert "model.layers.1.mlp.gate_proj.weight" in result.stderr and "qwen3moe" in result.stderr


def test_dry_run_shows_the_shape_llama_quantize_writes(tmp_path: Path) -> None:
    # llama-quantize stores the (1, n_embd) shared-expert gate with ggml_n_dims = 1 dimension.
    model = write_checkpoint(CASES["qwen2moe_h64"], tmp_path)
    shapes = {}
    for target in ("q8_0", "q4_k_m"):
        result = runner.invoke(app, ["convert", str(model), "-t", target, "--dry-run"])
        line = next(x for x in result.stdout.splitlines() if "blk.0.ffn_gate_inp_shexp" in x)
        shapes[target] = line.split()[1]
    assert shapes == {"q8_0": "1×64", "q4_k_m": "64"}
