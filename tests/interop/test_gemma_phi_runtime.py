"""llama.cpp runs qconv's Gemma 2/3 and Phi-3 files: load, greedy generation, logits close to bf16.

The family cases (tests/family_cases/gemma_phi.py) are converted by qconv; llama.cpp's runtime must
load each file, generate, and give next-token logits after the prompt close to the bf16 file's
(cosine similarity), which fails if llama.cpp reads any tensor or key differently from what qconv
meant (norms + 1, tied output, sliding window, LongRoPE factors, fused qkv / gate_up). gemma3-bpe
is left out: its embedding is trimmed below vocab_size as llama.cpp's own converter does, and
llama.cpp refuses such a file. Run with `make interop`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from family_fixtures import CASES, write_checkpoint
from llama_runtime import Runtime

from qconv.pipeline import convert

pytestmark = pytest.mark.interop

NAMES = ("gemma2", "gemma2-f32", "gemma3", "gemma3-vlm", "phi3", "phi3-longrope", "phi4-mini")
TYPES = ("q8_0", "q4_k_m")
PROMPT = [1, 5, 9, 17, 33, 65, 129, 257]  # ids below every case's vocabulary
# Lowest cosine to the bf16/f32 file's logits, measured (llama.cpp 0.3.36 build): q8_0 >= 0.9985
# (Gemma 3), q4_k_m 0.91 (gemma3, 640 wide with Q5_0/Q8_0 fallbacks) to 0.99; Gemma's q/k norms
# and sqrt(n_embd) embedding scale make these random tiny models more sensitive than Llama's.
# A misread tensor or key scores near 0 (test_logit_similarity_separates_different_weights).
MIN_COSINE = {"q8_0": 0.998, "q4_k_m": 0.9}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    return {}


def converted(cache: dict[tuple[str, str], Path], root: Path, name: str, qtype: str) -> Path:
    if (name, qtype) not in cache:
        model = root / name / CASES[name].folder
        if not model.is_dir():
            write_checkpoint(CASES[name], root / name)
        out = root / f"{name}-{qtype}.gguf"
        convert(str(model), out, target=qtype, jobs=1)
        cache[(name, qtype)] = out
    return cache[(name, qtype)]


CASE_TYPES = [(name, qtype) for name in NAMES for qtype in TYPES]


@pytest.mark.parametrize(("name", "qtype"), CASE_TYPES, ids=[f"{n}-{t}" for n, t in CASE_TYPES])
def test_llama_cpp_runs_gemma_and_phi_files_with_logits_close_to_bf16(
    runtime: Runtime,
    files: dict[tuple[str, str], Path],
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    qtype: str,
) -> None:
    root = tmp_path_factory.getbasetemp() / "gemma-phi-models"
    root.mkdir(exist_ok=True)
    reference_type = "f32" if CASES[name].dtype == "F32" else "bf16"
    with runtime.model(converted(files, root, name, reference_type)) as reference:
        expected = reference.generate(PROMPT, 4)
    with runtime.model(converted(files, root, name, qtype)) as model:
        result = model.generate(PROMPT, 4)
    assert len(result.tokens) == 4
    assert np.isfinite(result.prompt_logits).all()
    assert cosine(result.prompt_logits, expected.prompt_logits) >= MIN_COSINE[qtype]
