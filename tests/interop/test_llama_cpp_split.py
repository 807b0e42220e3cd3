"""llama.cpp loads qconv's split sets from the first part, and qconv's requantized GGUF files.

A split set must give exactly the logits of the same model written as one file: llama.cpp finds
the other parts by name from the first, checks split.no in each and split.tensors.count, and any
tensor read from the wrong part or offset would change the logits. A file requantized from a GGUF
input (the pipeline checkpoint's bf16 file to q4_k_m) must equal, in llama.cpp's hands, the file
qconv writes straight from the checkpoint. Run with `make interop`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from llama_runtime import Runtime
from make_pipeline_goldens import CASES as PIPELINE_CASES
from make_pipeline_goldens import write_checkpoint

from qconv.pipeline import convert

pytestmark = pytest.mark.interop

PROMPT = [1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = PIPELINE_CASES["llama3_h256_bf16"]
    root = tmp_path_factory.mktemp("split-interop")
    write_checkpoint(case, root)
    return root / case.arch_case().dir_name


def prompt_logits(runtime: Runtime, path: Path) -> np.ndarray:
    with runtime.model(path) as model:
        result = model.generate(PROMPT, 2)
    assert np.isfinite(result.prompt_logits).all()
    return np.asarray(result.prompt_logits)


@pytest.mark.parametrize(
    ("qtype", "limit"),
    [("q8_0", {"split_max_tensors": 4}), ("q4_k_m", {"split_max_size": 40_000})],
)
def test_llama_cpp_loads_a_split_set_from_its_first_part(
    runtime: Runtime, checkpoint: Path, tmp_path: Path, qtype: str, limit: dict[str, int]
) -> None:
    whole = convert(str(checkpoint), tmp_path / "whole.gguf", target=qtype, jobs=1)
    split = convert(str(checkpoint), tmp_path / "set.gguf", target=qtype, jobs=1, **limit)
    assert len(split.parts) > 2
    assert np.array_equal(prompt_logits(runtime, Path(split.parts[0])),
                          prompt_logits(runtime, Path(whole.output)))  # fmt: skip


def test_llama_cpp_runs_a_file_requantized_from_gguf_like_the_direct_one(
    runtime: Runtime, checkpoint: Path, tmp_path: Path
) -> None:
    bf16 = convert(str(checkpoint), tmp_path / "bf16.gguf", target="bf16", jobs=1)
    direct = convert(str(checkpoint), tmp_path / "direct.gguf", target="q4_k_m", jobs=1)
    requant = convert(bf16.output, tmp_path / "requant.gguf", target="q4_k_m", jobs=1)
    assert np.array_equal(prompt_logits(runtime, Path(requant.output)),
                          prompt_logits(runtime, Path(direct.output)))  # fmt: skip
