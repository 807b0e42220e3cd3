"""GGUF in and split sets out, byte for byte against llama.cpp's own tools.

tests/golden/gguf_io/*.json were written by tools/make_gguf_io_goldens.py from llama.cpp's output,
read with the vendored gguf-py: requant.json from ``llama-quantize [--allow-requantize] [--pure]
IN OUT TYPE``, split.json from ``convert_hf_to_gguf.py --split-max-tensors/--split-max-size``. Each
entry holds a file's sha256 plus its KV keys (with value types) and per-tensor sha256, so a mismatch
names the key or tensor that differs before the whole-file hash is compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from arch_fixtures import CASES as ARCH_CASES
from arch_fixtures import write_case
from family_fixtures import CASES as FAMILY_CASES
from family_fixtures import write_checkpoint as write_family_checkpoint
from make_gguf_io_goldens import (
    ARCH_DIR,
    FLAGS,
    GOLDEN_DIR,
    IMATRIX_DIR,
    IMATRIX_FILE,
    summarize,
)
from make_pipeline_goldens import CASES as PIPELINE_CASES
from make_pipeline_goldens import write_checkpoint

from qconv.gguf.split import parse_split_size
from qconv.pipeline import convert

REQUANT = json.loads((GOLDEN_DIR / "requant.json").read_text(encoding="utf-8"))
SPLIT = json.loads((GOLDEN_DIR / "split.json").read_text(encoding="utf-8"))


def assert_same_file(ours: dict[str, Any], theirs: dict[str, Any], what: str) -> None:
    assert [t[:4] for t in ours["tensors"]] == [t[:4] for t in theirs["tensors"]], what
    for mine, golden in zip(ours["tensors"], theirs["tensors"], strict=True):
        assert mine[4] == golden[4], f"{what}: tensor {mine[0]} data differs"
    assert ours["kvs"] == theirs["kvs"], f"{what}: metadata keys or types differ"
    assert (ours["size"], ours["sha256"]) == (theirs["size"], theirs["sha256"]), what


def test_goldens_stay_small() -> None:
    for path in GOLDEN_DIR.glob("*.json"):
        assert path.stat().st_size < 200_000, path


def write_split(case: dict[str, Any], workdir: Path) -> list[Path]:
    """qconv's split set for a split.json case, from the same checkpoint the converter split."""
    model = write_case(ARCH_CASES[case["arch"]], workdir / "src")
    flag, value = case["args"]
    limits = (
        {"split_max_tensors": int(value)}
        if flag == "--split-max-tensors"
        else {"split_max_size": parse_split_size(value)}
    )
    (workdir / "out").mkdir()
    out = workdir / "out" / "model.gguf"
    report = convert(str(model), out, target=case["type"], jobs=1, **limits)
    assert sorted(p.name for p in (workdir / "out").iterdir()) == sorted(case["parts"])
    return [Path(p) for p in report.parts]


def family_input(name: str, summary: dict[str, Any], workdir: Path) -> Path:
    """qconv's lossless file of a family checkpoint, checked equal to the converter's."""
    case = FAMILY_CASES[name]
    model = write_family_checkpoint(case, workdir)
    path = workdir / "input.gguf"
    convert(str(model), path, target="bf16" if case.dtype == "BF16" else "f32", jobs=1)
    assert_same_file(summarize(path), summary, f"converter input family:{name}")
    return path


def split_input(case: dict[str, Any], parts: dict[str, Any], workdir: Path) -> Path:
    """qconv's split set checked equal to the converter's parts; its first part."""
    paths = write_split(case, workdir)
    for path in paths:
        assert_same_file(summarize(path), parts[path.name], f"converter part {path.name}")
    return paths[0]


@pytest.fixture(scope="module")
def pipeline_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The converter's bf16 GGUF of each pipeline case, rebuilt by qconv and checked equal."""
    workdir = tmp_path_factory.mktemp("requant-inputs")
    inputs = {}
    for spec, summary in REQUANT["inputs"].items():
        kind, name = spec.split(":", 1)
        if kind == "split":
            inputs[spec] = split_input(SPLIT[name], summary, workdir / name)
            continue
        if kind == "family":
            inputs[spec] = family_input(name, summary, workdir / name)
            continue
        case = PIPELINE_CASES[name]
        model = write_checkpoint(case, workdir / case.name)
        path = workdir / f"{case.name}-{case.outtype}.gguf"
        convert(str(model), path, target=case.outtype, jobs=1)
        assert_same_file(summarize(path), summary, f"converter input {spec}")
        inputs[spec] = path
    return inputs


@pytest.mark.parametrize("case_id", list(REQUANT["cases"]))
def test_gguf_input_equals_llama_quantize(
    case_id: str, pipeline_inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = REQUANT["cases"][case_id]
    source = pipeline_inputs.get(case["input"]) or ARCH_DIR / case["input"]
    out = tmp_path / "out.gguf"
    options: dict[str, Any] = {}
    for flag in case["flags"]:
        if flag.startswith("--imatrix="):  # run where llama-quantize ran: the file name is stored
            monkeypatch.chdir(IMATRIX_DIR / flag.split("=", 1)[1])
            options["imatrix"] = IMATRIX_FILE
        else:
            options[FLAGS[flag]] = True
    convert(str(source), out, target=case["type"], jobs=1, **options)
    assert_same_file(summarize(out), case["output"], case_id)


@pytest.mark.parametrize("case_id", list(SPLIT))
def test_split_output_equals_the_converters(case_id: str, tmp_path: Path) -> None:
    case = SPLIT[case_id]
    paths = write_split(case, tmp_path)
    assert [path.name for path in paths] == list(case["parts"])
    for path in paths:
        assert_same_file(summarize(path), case["parts"][path.name], f"{case_id}/{path.name}")
