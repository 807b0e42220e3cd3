"""qconv --imatrix equals llama.cpp's convert_hf_to_gguf + llama-quantize --imatrix, byte for byte.

tests/golden/pipeline_imatrix/<case>/ holds what llama.cpp itself made
(tools/make_pipeline_imatrix_goldens.py): imatrix.gguf and imatrix.dat, written by llama-imatrix
over corpus.txt from the case's bf16 (f32) GGUF, and expected.json, a description
(tests/gguf_digest.py) of each file llama-quantize --imatrix wrote from that GGUF: every KV and
every tensor by digest, in order, and the whole file's sha256. The runs cover Q4_K_M, Q4_K_S,
Q3_K_M, Q2_K, Q4_0, Q6_K, IQ4_NL and IQ4_XS with either imatrix file, and IQ4_NL / IQ4_XS without
one, on hidden sizes that are (256) and are not (64, 32) multiples of 256. qconv converts the
same checkpoint in one step, from inside the case folder so that ``--imatrix imatrix.gguf`` is
spelled as llama-quantize was given it (it lands in quantize.imatrix.file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from gguf_digest import describe_gguf
from make_pipeline_goldens import CASES, write_checkpoint
from make_pipeline_imatrix_goldens import GOLDEN_DIR, IMATRIX_FTYPES, PLAIN_FTYPES, run_key, runs

from qconv.pipeline import convert

RUNS = [(name, ftype, imatrix) for name in CASES for ftype, imatrix in runs()]
IDS = [f"{name}-{run_key(ftype, imatrix)}" for name, ftype, imatrix in RUNS]


def expected(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN_DIR / name / "expected.json").read_text())


@pytest.fixture(scope="module")
def described(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str | None], Any]:
    """qconv's file for each run, described once per module (filled lazily by ``ours``)."""
    return {"workdir": tmp_path_factory.mktemp("pipeline_imatrix")}  # type: ignore[dict-item]


def ours(cache: dict, name: str, ftype: str, imatrix: str | None) -> dict[str, Any]:
    key = (name, ftype, imatrix)
    if key not in cache:
        workdir: Path = cache["workdir"]
        case = CASES[name]
        model = workdir / name / case.arch_case().dir_name
        if not model.is_dir():
            write_checkpoint(case, workdir / name)
        out = workdir / f"{name}-{run_key(ftype, imatrix)}.gguf"
        here = Path.cwd()
        os.chdir(GOLDEN_DIR / name)  # so the imatrix path is spelled as llama-quantize got it
        try:
            convert(str(model), out, target=ftype, imatrix=imatrix, jobs=1)
        finally:
            os.chdir(here)
        cache[key] = describe_gguf(out)
    return cache[key]


def test_goldens_cover_both_imatrix_formats_every_type_and_both_shapes() -> None:
    for name in CASES:
        keys = set(expected(name))
        for fmt in ("gguf", "dat"):
            assert {f"{f}+imatrix.{fmt}" for f in IMATRIX_FTYPES} <= keys
            assert (GOLDEN_DIR / name / f"imatrix.{fmt}").stat().st_size < 64_000
        assert set(PLAIN_FTYPES) <= keys
    hidden = {CASES[n].arch_case().config["hidden_size"] for n in CASES}
    assert 256 in hidden and any(h % 256 for h in hidden)


def first_difference(ours_: list[list[Any]], theirs: list[list[Any]]) -> str:
    for a, b in zip(ours_, theirs, strict=False):
        if a != b:
            return f"qconv {a} != llama-quantize {b}"
    return f"qconv has {len(ours_)} entries, llama-quantize {len(theirs)}"


@pytest.mark.parametrize(("name", "ftype", "imatrix"), RUNS, ids=IDS)
def test_tensors_equal_llama_quantize_with_imatrix(
    described: dict, name: str, ftype: str, imatrix: str | None
) -> None:
    got = ours(described, name, ftype, imatrix)["tensors"]
    want = expected(name)[run_key(ftype, imatrix)]["tensors"]
    assert got == want, first_difference(got, want)


@pytest.mark.parametrize(("name", "ftype", "imatrix"), RUNS, ids=IDS)
def test_metadata_equals_llama_quantize_with_imatrix(
    described: dict, name: str, ftype: str, imatrix: str | None
) -> None:
    got = ours(described, name, ftype, imatrix)["kvs"]
    want = expected(name)[run_key(ftype, imatrix)]["kvs"]
    assert got == want, first_difference(got, want)


@pytest.mark.parametrize(("name", "ftype", "imatrix"), RUNS, ids=IDS)
def test_whole_file_is_byte_identical_to_llama_quantize(
    described: dict, name: str, ftype: str, imatrix: str | None
) -> None:
    got = ours(described, name, ftype, imatrix)["file_sha256"]
    assert got == expected(name)[run_key(ftype, imatrix)]["file_sha256"]


def test_worker_processes_write_the_same_weighted_file(tmp_path: Path) -> None:
    name, ftype, imatrix = "llama3_h256_bf16", "iq4_xs", "imatrix.dat"
    case = CASES[name]
    model = write_checkpoint(case, tmp_path)
    out = tmp_path / "jobs2.gguf"
    here = Path.cwd()
    os.chdir(GOLDEN_DIR / name)
    try:
        convert(str(model), out, target=ftype, imatrix=imatrix, jobs=2)
    finally:
        os.chdir(here)
    assert (
        describe_gguf(out)["file_sha256"] == expected(name)[run_key(ftype, imatrix)]["file_sha256"]
    )
