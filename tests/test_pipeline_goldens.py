"""qconv's one-step K-quant files equal llama.cpp's two-step pipeline, tensor for tensor.

tests/golden/pipeline/<case>/<ftype>.gguf were written by llama.cpp itself
(tools/make_pipeline_goldens.py): convert_hf_to_gguf.py --outtype bf16 (f32 for the F32 source),
then llama-quantize <that file> <out> <FTYPE>. qconv converts the same checkpoint straight to the
file type and must produce the same tensors (names, order, types, shapes, bytes) and the same
metadata. The one ordering difference allowed is llama-quantize's: it re-sets
general.quantization_version and general.file_type, which moves them to the end of its KV list.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from arch_fixtures import assert_same_tensors, golden_kvs
from make_pipeline_goldens import CASES, golden_path, write_checkpoint

from qconv.pipeline import convert

# Keys llama-quantize sets after copying the input's KVs; gguf_set_val moves a key to the end.
MOVED_BY_LLAMA_QUANTIZE = ("general.quantization_version", "general.file_type")

CASE_FTYPES = [(name, ftype) for name, case in CASES.items() for ftype in case.ftypes]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pipeline")


@pytest.fixture(params=CASE_FTYPES, ids=[f"{n}-{f}" for n, f in CASE_FTYPES])
def pair(request: pytest.FixtureRequest, workdir: Path) -> tuple[Path, Path]:
    """(qconv's one-step file, llama.cpp's golden); each file converted once per module."""
    name, ftype = request.param
    case = CASES[name]
    out = workdir / f"{name}-{ftype}.gguf"
    if not out.exists():
        model = workdir / name / case.arch_case().dir_name
        if not model.is_dir():
            write_checkpoint(case, workdir / name)
        convert(str(model), out, target=ftype, jobs=1)
    return out, golden_path(case, ftype)


def test_golden_files_exist_and_stay_small() -> None:
    sizes = [golden_path(CASES[n], f).stat().st_size for n, f in CASE_FTYPES]
    assert max(sizes) < 200_000
    assert sum(sizes) < 1_500_000


def test_tensors_equal_convert_then_llama_quantize(pair: tuple[Path, Path]) -> None:
    assert_same_tensors(*pair)


def test_metadata_equals_convert_then_llama_quantize(pair: tuple[Path, Path]) -> None:
    out, golden = pair
    ours, theirs = golden_kvs(out), golden_kvs(golden)
    assert {kv.key: kv for kv in ours} == {kv.key: kv for kv in theirs}
    assert len(ours) == len(theirs)


def test_metadata_order_matches_apart_from_keys_llama_quantize_moves(
    pair: tuple[Path, Path],
) -> None:
    out, golden = pair

    def order(path: Path) -> list[str]:
        return [kv.key for kv in golden_kvs(path) if kv.key not in MOVED_BY_LLAMA_QUANTIZE]

    assert order(out) == order(golden)
