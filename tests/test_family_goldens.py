"""qconv's files equal llama.cpp's for checkpoints made by transformers' own model classes.

tests/family_fixtures.py explains the goldens; tools/make_family_goldens.py makes them with the
vendored convert_hf_to_gguf.py and llama-quantize. Each case and output type is converted by qconv
in one step and compared KV for KV and tensor for tensor (name, type, shape, SHA-256 of the bytes).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from family_fixtures import CASES, digest, golden_digest, write_checkpoint

from qconv import convert

CASE_OUTPUTS = [(name, output) for name, case in CASES.items() for output in case.outputs]


@pytest.mark.parametrize(
    ("name", "output"), CASE_OUTPUTS, ids=[f"{n}-{o}" for n, o in CASE_OUTPUTS]
)
def test_family_file_equals_llama_cpp(name: str, output: str, tmp_path: Path) -> None:
    case = CASES[name]
    model = write_checkpoint(case, tmp_path)
    out = tmp_path / "qconv.gguf"
    convert(str(model), out, target=output, jobs=1)
    ours, theirs = digest(out), golden_digest(case, output)
    assert [kv[0] for kv in ours["kvs"]] == [kv[0] for kv in theirs["kvs"]]
    for mine, golden in zip(ours["kvs"], theirs["kvs"], strict=True):
        assert mine == golden, f"{name}/{output}: KV {golden[0]} differs"
    assert [t[:3] for t in ours["tensors"]] == [t[:3] for t in theirs["tensors"]]
    for mine, golden in zip(ours["tensors"], theirs["tensors"], strict=True):
        assert mine[3] == golden[3], f"{name}/{output}: tensor {golden[0]} bytes differ"
