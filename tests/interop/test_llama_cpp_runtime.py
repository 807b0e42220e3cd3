"""llama.cpp's own runtime loads qconv's files, tokenizes like Hugging Face, and generates.

For every covered architecture (tests/arch_fixtures.CASES) qconv converts the checkpoint to each
type in TYPES; llama.cpp (libllama built from the vendored sources, driven through ctypes) must
load the file, tokenize the recorded strings to exactly the ids the HF tokenizer gave
(tokens.json), and run greedy generation. The quantized files' next-token logits must track the
bf16 file's (cosine similarity), which fails if llama.cpp reads any block differently from what
qconv meant. The pipeline checkpoints (tools/make_pipeline_goldens.py) add real K-quant blocks:
the arch cases are hidden 32, so their q4_k_m falls back to legacy types everywhere.
Run with `make interop`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from arch_fixtures import CASES, recorded_tokens, write_case
from llama_runtime import Runtime
from make_pipeline_goldens import CASES as PIPELINE_CASES
from make_pipeline_goldens import write_checkpoint

from qconv.pipeline import convert

pytestmark = pytest.mark.interop

TYPES = ("bf16", "q8_0", "q4_0", "q4_k_m")
N_GENERATED = 8
PROMPT = "The quick brown fox jumps over the lazy dog."
# Lowest cosine similarity to the bf16 file's logits after the prompt. Measured on these tiny
# random models (llama.cpp 0.3.36 build): q8_0/q6_k >= 0.9999, q4_0 >= 0.990, q4_k_m >= 0.998,
# q2_k/q3_k >= 0.988; the same checkpoint with other random weights scores 0.07.
MIN_COSINE = {"q8_0": 0.999, "q6_k": 0.999, "q5_k_m": 0.995, "q4_k_m": 0.99, "q4_k_s": 0.99}
MIN_COSINE_DEFAULT = 0.97

ARCH_TYPES = [(name, qtype) for name in CASES for qtype in TYPES]
PIPELINE_TYPES = [(name, ft) for name, case in PIPELINE_CASES.items() for ft in case.ftypes]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """qconv's output per (case, type), filled lazily; one checkpoint per case."""
    return {}


def convert_once(cache: dict[tuple[str, str], Path], root: Path, name: str, qtype: str) -> Path:
    if (name, qtype) not in cache:
        if name in CASES:
            model = root / name / CASES[name].dir_name
            if not model.is_dir():
                write_case(CASES[name], root / name)
        else:
            case = PIPELINE_CASES[name]
            model = root / name / case.arch_case().dir_name
            if not model.is_dir():
                write_checkpoint(case, root / name)
        out = root / f"{name}-{qtype}.gguf"
        convert(str(model), out, target=qtype, jobs=1)
        cache[(name, qtype)] = out
    return cache[(name, qtype)]


ConvertCase = Callable[[str, str], Path]


@pytest.fixture
def convert_case(
    converted: dict[tuple[str, str], Path], tmp_path_factory: pytest.TempPathFactory
) -> ConvertCase:
    root = tmp_path_factory.getbasetemp() / "interop-models"
    root.mkdir(exist_ok=True)
    return lambda name, qtype: convert_once(converted, root, name, qtype)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize(("name", "qtype"), ARCH_TYPES, ids=[f"{n}-{t}" for n, t in ARCH_TYPES])
def test_llama_cpp_tokenizes_recorded_strings_to_hf_ids(
    runtime: Runtime, convert_case: ConvertCase, name: str, qtype: str
) -> None:
    recorded = recorded_tokens(CASES[name])
    with runtime.model(convert_case(name, qtype)) as model:
        assert model.n_vocab == CASES[name].config["vocab_size"]
        for text, ids, with_special in zip(
            recorded["texts"], recorded["ids"], recorded["ids_with_special"], strict=True
        ):
            assert model.tokenize(text, add_special=False) == ids, text
            assert model.tokenize(text, add_special=True) == with_special, text


@pytest.mark.parametrize(("name", "qtype"), ARCH_TYPES, ids=[f"{n}-{t}" for n, t in ARCH_TYPES])
def test_llama_cpp_generates_greedily_with_logits_close_to_bf16(
    runtime: Runtime, convert_case: ConvertCase, name: str, qtype: str
) -> None:
    check_generation(runtime, convert_case, name, qtype)


@pytest.mark.parametrize(
    ("name", "ftype"), PIPELINE_TYPES, ids=[f"{n}-{t}" for n, t in PIPELINE_TYPES]
)
def test_llama_cpp_runs_k_quant_files_with_logits_close_to_bf16(
    runtime: Runtime, convert_case: ConvertCase, name: str, ftype: str
) -> None:
    check_generation(runtime, convert_case, name, ftype)


def check_generation(runtime: Runtime, convert_case: ConvertCase, name: str, qtype: str) -> None:
    with runtime.model(convert_case(name, "bf16")) as reference:
        prompt = reference.tokenize(PROMPT, add_special=True)
        expected = reference.generate(prompt, N_GENERATED)
    with runtime.model(convert_case(name, qtype)) as model:
        assert model.tokenize(PROMPT, add_special=True) == prompt
        result = model.generate(prompt, N_GENERATED)
    assert len(result.tokens) == N_GENERATED
    assert all(0 <= t < model.n_vocab for t in result.tokens), result.tokens
    assert np.isfinite(result.prompt_logits).all()
    similarity = cosine(result.prompt_logits, expected.prompt_logits)
    assert similarity >= MIN_COSINE.get(qtype, MIN_COSINE_DEFAULT), similarity
    if qtype == "bf16":
        assert result.tokens == expected.tokens  # same file twice: llama.cpp is deterministic


def test_logit_similarity_separates_different_weights(
    runtime: Runtime, convert_case: ConvertCase, tmp_path: Path
) -> None:
    """The control: the same checkpoint with other random weights (seed 1) scores far lower."""
    other = write_case(dataclasses.replace(CASES["llama3"], seed=1), tmp_path)
    convert(str(other), tmp_path / "other.gguf", target="bf16", jobs=1)
    logits = []
    for path in (convert_case("llama3", "bf16"), tmp_path / "other.gguf"):
        with runtime.model(path) as model:
            logits.append(model.generate([1, 2, 3, 4], 1).prompt_logits)
    assert abs(cosine(*logits)) < 0.5
