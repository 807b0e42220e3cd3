"""llama.cpp's runtime runs qconv's files of every family golden case (tests/family_fixtures.py).

Decoders: llama.cpp loads each file, generates greedily, and its next-token logits after a prompt
track the bf16 file's (cosine similarity). Embedding models (BERT): llama.cpp computes the pooled
sentence embedding with the pooling qconv wrote, and it tracks the f32 (or bf16) file's.
Run with `make interop`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from family_fixtures import CASES, SAMPLE_TEXT, recorded_ids, write_checkpoint
from llama_runtime import Runtime

from qconv.pipeline import convert

pytestmark = pytest.mark.interop

EMBEDDING_ARCHS = ("bert",)
# Lowest cosine similarity to the reference file's output (logits or pooled embedding),
# measured on these tiny random models with the 0.3.36 build.
MIN_COSINE = {"f32": 0.9999, "f16": 0.9999, "bf16": 0.999, "q8_0": 0.999, "q6_k": 0.995}
MIN_COSINE_DEFAULT = 0.95

CASE_TYPES = [
    (name, output) for name, case in CASES.items() if case.llama_cpp_runs for output in case.outputs
]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("family-models")


def converted(root: Path, name: str, output: str) -> Path:
    out = root / f"{name}-{output}.gguf"
    if not out.is_file():
        model = root / name / CASES[name].folder
        if not model.is_dir():
            write_checkpoint(CASES[name], root / name)
        convert(str(model), out, target=output, jobs=1)
    return out


def run(runtime: Runtime, path: Path, expected_ids: list[int] | None) -> tuple[str, np.ndarray]:
    with runtime.model(path) as model:
        from gguf import GGUFReader

        arch = str(GGUFReader(path).fields["general.architecture"].contents())
        tokens = model.tokenize(SAMPLE_TEXT, add_special=True)
        assert tokens, "llama.cpp produced no tokens"
        if expected_ids is not None:
            assert tokens == expected_ids, "llama.cpp tokenizes unlike the Hugging Face tokenizer"
        if arch in EMBEDDING_ARCHS:
            embedding, pooling = model.embed(tokens)
            assert pooling > 0, "llama.cpp did not read the pooling type"
            assert np.isfinite(embedding).all()
            return arch, embedding
        generation = model.generate(tokens, 4)
        assert len(generation.tokens) == 4
        return arch, generation.prompt_logits


@pytest.mark.parametrize(("name", "output"), CASE_TYPES, ids=[f"{n}-{o}" for n, o in CASE_TYPES])
def test_llama_cpp_runs_family_file_close_to_reference(
    runtime: Runtime, models: Path, name: str, output: str
) -> None:
    case = CASES[name]
    reference = "f32" if "f32" in case.outtypes else "bf16"
    ids = recorded_ids(case)
    _, ours = run(runtime, converted(models, name, output), ids)
    _, expected = run(runtime, converted(models, name, reference), ids)
    similarity = cosine(ours, expected)
    bound = case.min_cosine.get(output, MIN_COSINE.get(output, MIN_COSINE_DEFAULT))
    assert similarity >= bound, (name, output, similarity)
