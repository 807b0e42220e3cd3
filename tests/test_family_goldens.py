"""qconv's files equal llama.cpp's for checkpoints made by transformers' own model classes.

tests/family_fixtures.py explains the goldens; tools/make_family_goldens.py makes them with the
vendored convert_hf_to_gguf.py and llama-quantize. Each case and output type is converted by qconv
in one step and compared KV for KV and tensor for tensor (name, type, shape, SHA-256 of the bytes).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from family_fixtures import CASES, case_dir, digest, golden_digest, read_skeleton, write_checkpoint

from qconv import convert
from qconv.model.architecture import select_architecture
from qconv.model.config import ModelConfig
from qconv.model.transforms import GeneratedTensor

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


@pytest.mark.parametrize("name", list(CASES))
def test_tensor_names_agree_with_gguf_py_tensor_name_map(name: str) -> None:
    """Every checkpoint tensor qconv renames one to one gets the name llama.cpp's own
    TensorNameMap (recorded by the golden script from the vendored gguf-py) gives it."""
    case = CASES[name]
    skeleton = json.loads((case_dir(case) / "skeleton.json").read_text("utf-8"))
    config, tensors = read_skeleton(case)
    arch = select_architecture(ModelConfig.from_json(config))
    assert arch.name == skeleton["gguf_arch"]
    fakes = [GeneratedTensor(n, np.zeros(s, np.float32), "BF16") for n, s in tensors]
    mapped = arch.tensors(fakes)
    sources = [data.name for _, data in mapped]
    checked = 0
    for gguf_name, data in mapped:
        expected = skeleton["name_map"].get(data.name)
        if expected is None or sources.count(data.name) != 1:
            continue  # stacked, split or generated: proven by the digests instead
        assert gguf_name == expected, data.name
        checked += 1
    assert checked > 0


# The layout changes only which source rows feed each tensor, not how it is quantized: the
# converter's own outputs (bf16, q8_0) are enough, and the golden script checks the same outputs.
V5_OUTPUTS = [(n, o) for n, c in CASES.items() if c.v5_experts for o in c.outtypes]


@pytest.mark.parametrize(("name", "output"), V5_OUTPUTS, ids=[f"{n}-{o}" for n, o in V5_OUTPUTS])
def test_fused_v5_experts_give_the_per_expert_file(name: str, output: str, tmp_path: Path) -> None:
    """transformers v5 stores experts as fused 3-D tensors; the file must not change (the golden
    script checks that llama.cpp's converter writes the same file from both layouts too)."""
    case = CASES[name]
    model = write_checkpoint(case, tmp_path, v5_experts=True)
    out = tmp_path / "qconv.gguf"
    convert(str(model), out, target=output, jobs=1)
    assert digest(out) == golden_digest(case, output)


def test_each_case_module_imports_on_its_own() -> None:
    """A case module imported first (as an editor or `python -c` would) does not hit a circular
    import through family_fixtures, and the registry it feeds still finds every case."""
    tests = Path(__file__).resolve().parent
    script = (
        "import sys, importlib, pkgutil\n"
        f"sys.path[:0] = [{str(tests)!r}, {str(tests.parent / 'tools')!r}]\n"
        "import family_cases\n"
        "for info in pkgutil.iter_modules(family_cases.__path__):\n"
        "    assert importlib.import_module('family_cases.' + info.name).CASES\n"
        "import family_fixtures\n"
        "print(len(family_fixtures.CASES))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(CASES)
