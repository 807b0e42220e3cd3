"""qconv's files equal what llama.cpp's own convert_hf_to_gguf.py writes for the same checkpoint.

The goldens under tests/golden/arch were produced by the vendored llama.cpp converter
(tools/make_arch_goldens.py) for small checkpoints of every covered architecture. Here qconv
converts the same checkpoints end to end and must match them tensor for tensor, byte for byte,
with equal metadata. No torch or llama.cpp build is needed at test time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from arch_fixtures import CASES, assert_same_tensors, checkpoint_and_golden, golden_kvs

from qconv.pipeline import convert

CASE_OUTTYPES = [(name, outtype) for name, case in CASES.items() for outtype in case.outtypes]


@pytest.fixture(params=CASE_OUTTYPES, ids=[f"{n}-{o}" for n, o in CASE_OUTTYPES])
def converted(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    name, outtype = request.param
    model, golden = checkpoint_and_golden(name, outtype, tmp_path)
    out = tmp_path / "qconv.gguf"
    convert(str(model), out, target=outtype, jobs=1)
    return out, golden


def test_tensor_data_is_byte_identical_to_llama_cpp(converted: tuple[Path, Path]) -> None:
    assert_same_tensors(*converted)


def test_metadata_equals_llama_cpp_key_for_key(converted: tuple[Path, Path]) -> None:
    out, golden = converted
    assert golden_kvs(out) == golden_kvs(golden)
