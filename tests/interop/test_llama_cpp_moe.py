"""llama.cpp loads and runs qconv's mixture-of-experts files (tests/family_cases/moe.py).

Each MoE family case is converted by qconv to every output its goldens cover; llama.cpp must load
the file (stacked expert tensors, routers, hparams), generate greedily, and its next-token logits
after the prompt must track the bf16 file's, which fails if llama.cpp reads an expert stack
differently from what qconv meant. Run with `make interop`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from family_fixtures import CASES, write_checkpoint
from llama_runtime import Runtime

from qconv.pipeline import convert

pytestmark = pytest.mark.interop

PROMPT = "The quick brown fox jumps over the lazy dog."
N_GENERATED = 4
# Tiny random MoE models route by small logit differences, so a quantized router input can pick
# other experts than bf16 does; the thresholds are looser than the dense ones for that reason.
MIN_COSINE = {"q8_0": 0.995, "q6_k": 0.99}
MIN_COSINE_DEFAULT = 0.9
MOE_FAMILIES = ("qwen3moe", "qwen2moe", "mixtral", "olmoe")
MOE_CASES = [case for case in CASES.values() if case.name.startswith(MOE_FAMILIES)]
OUTPUTS = [(case.name, output) for case in MOE_CASES for output in case.outputs]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One checkpoint per case, written when a test first asks for it."""
    return {}


def _logits(runtime: Runtime, path: Path) -> np.ndarray:
    """Load, generate greedily, and return the next-token logits after the prompt."""
    with runtime.model(path) as model:
        prompt = model.tokenize(PROMPT, add_special=True)
        result = model.generate(prompt, N_GENERATED)
        assert len(result.tokens) == N_GENERATED
        assert all(0 <= t < model.n_vocab for t in result.tokens), result.tokens
        return result.prompt_logits


@pytest.mark.parametrize(("name", "output"), OUTPUTS, ids=[f"{n}-{o}" for n, o in OUTPUTS])
def test_llama_cpp_runs_moe_files_with_logits_close_to_bf16(
    runtime: Runtime, models: dict[str, Path], tmp_path: Path, name: str, output: str
) -> None:
    if name not in models:
        models[name] = write_checkpoint(CASES[name], tmp_path / "checkpoint")
    files = {}
    for target in {"bf16", output}:
        files[target] = tmp_path / f"{name}-{target}.gguf"
        convert(str(models[name]), files[target], target=target, jobs=1)
    expected, logits = _logits(runtime, files["bf16"]), _logits(runtime, files[output])
    assert np.isfinite(logits).all()
    a, b = logits.astype(np.float64), expected.astype(np.float64)
    similarity = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert similarity >= MIN_COSINE.get(output, MIN_COSINE_DEFAULT), similarity
