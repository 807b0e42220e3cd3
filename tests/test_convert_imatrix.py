"""``--imatrix`` reaches every quantized tensor's chunks, and a bad imatrix stops before any output.

The weighted kernels and the byte-exact files are proven elsewhere (tests/test_quant_imatrix_*,
tests/test_pipeline_imatrix_goldens.py); these tests pin the plumbing: which tensors get which
importance rows, where the quantize.imatrix.* keys go, and how refusals surface.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qconv import ConvertOptions, pipeline, quant
from qconv.cli import app
from qconv.conversion import plan_conversion
from qconv.errors import UsageError
from qconv.gguf.constants import GGMLType
from qconv.model.transforms import GeneratedTensor
from qconv.pipeline import _chunks
from qconv.plan.mixture import llama_quantize_order
from qconv.plan.plan import TensorPlan
from qconv.workers import convert_chunk


def write_legacy(path: Path, entries: dict[str, np.ndarray], chunks: int = 4) -> Path:
    out = struct.pack("<i", len(entries))
    for name, values in entries.items():
        out += struct.pack("<i", len(name)) + name.encode() + struct.pack("<ii", 1, values.size)
        out += values.astype("<f4").tobytes()
    path.write_bytes(out + struct.pack("<ii", 10, 8) + b"data.txt")
    return path


@pytest.fixture
def model(tiny_checkpoint: Path) -> Path:
    return tiny_checkpoint


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stderr


def block_weights(model: Path) -> dict[str, tuple[int, ...]]:
    """GGUF name -> shape of every 2-D blk.* weight of the model."""
    plans = plan_conversion(str(model), target="q4_0").plans
    return {p.name: p.shape for p in plans if p.name.startswith("blk.") and len(p.shape) == 2}


@pytest.fixture
def imatrix(model: Path, tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    entries = {
        name: rng.uniform(0.5, 2.0, shape[-1]).astype(np.float32)
        for name, shape in block_weights(model).items()
    }
    return write_legacy(tmp_path / "imatrix.dat", entries)


def test_every_quantized_block_tensor_carries_its_importances(model: Path, imatrix: Path) -> None:
    conversion = plan_conversion(str(model), target="q4_k_m", imatrix=str(imatrix))
    weighted = {p.name for p in conversion.plans if p.importance is not None}
    assert weighted == set(block_weights(model))
    assert all("imatrix" in p.reason for p in conversion.plans if p.importance is not None)


def test_quantize_keys_follow_file_type_in_llama_quantizes_order(
    model: Path, imatrix: Path
) -> None:
    conversion = plan_conversion(str(model), target="q4_k_m", imatrix=str(imatrix))
    keys = [kv.key for kv in conversion.kvs]
    assert keys[-6:] == [
        "general.quantization_version",
        "general.file_type",
        "quantize.imatrix.file",
        "quantize.imatrix.dataset",
        "quantize.imatrix.entries_count",
        "quantize.imatrix.chunks_count",
    ]
    values = {kv.key: kv.value for kv in conversion.kvs}
    assert values["quantize.imatrix.file"] == str(imatrix)
    assert values["quantize.imatrix.entries_count"] == len(block_weights(model))


def test_q8_0_with_an_imatrix_is_laid_out_as_llama_quantize_writes_it(
    model: Path, imatrix: Path
) -> None:
    plain = [p.name for p in plan_conversion(str(model), target="q8_0").plans]
    weighted = plan_conversion(str(model), target="q8_0", imatrix=str(imatrix))
    assert [p.name for p in weighted.plans] == [plain[i] for i in llama_quantize_order(plain)]
    assert [p.name for p in weighted.plans] != plain
    assert weighted.kvs[-1].key == "quantize.imatrix.chunks_count"


def test_an_imatrix_with_a_float_type_is_a_usage_error(model: Path, imatrix: Path) -> None:
    with pytest.raises(UsageError, match="--imatrix applies to quantized types"):
        plan_conversion(str(model), target="f16", imatrix=str(imatrix))


def test_convert_hands_each_chunk_its_tensors_importances(
    model: Path, imatrix: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unweighted = quant.quantize

    def recording(rows, qtype, weights=None):  # type: ignore[no-untyped-def]
        calls.append((rows.shape, qtype, None if weights is None else weights.copy()))
        return unweighted(rows, qtype)

    calls: list = []
    monkeypatch.setattr(quant, "quantize", recording)
    out = tmp_path / "out.gguf"
    options = ConvertOptions(target="q4_0", imatrix=str(imatrix), jobs=1)
    conversion = plan_conversion(str(model), options)
    pipeline.write_conversion(conversion, out, options)
    by_plan = conversion.plans
    weighted = [w for _, _, w in calls if w is not None]
    assert len(weighted) == sum(p.importance is not None for p in by_plan)
    wanted = [p.importance[0] for p in by_plan if p.importance is not None]
    assert all(np.array_equal(a, b) for a, b in zip(weighted, wanted, strict=True))


def test_expert_tensors_are_chunked_at_expert_boundaries_with_their_own_rows() -> None:
    values = np.arange(3 * 5 * 32, dtype=np.float32).reshape(3, 5, 32)
    importance = np.stack([np.full(32, e + 1, np.float32) for e in range(3)])
    plan = TensorPlan(
        "blk.0.ffn_up_exps.weight",
        GeneratedTensor("blk.0.ffn_up_exps.weight", values),
        GGMLType.Q8_0,
        "test",
        importance=importance,
    )
    chunks = _chunks([plan])
    assert [(start, stop) for _, start, stop, _, _ in chunks] == [(0, 5), (5, 10), (10, 15)]


def test_expert_chunks_pass_the_experts_row_of_importances(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.ones((2, 4, 32), np.float32)
    importance = np.stack([np.full(32, 1.0, np.float32), np.full(32, 2.0, np.float32)])
    plan = TensorPlan(
        "blk.0.ffn_down_exps.weight",
        GeneratedTensor("blk.0.ffn_down_exps.weight", values),
        GGMLType.Q8_0,
        "test",
        importance=importance,
    )
    got = []
    monkeypatch.setattr(quant, "quantize", lambda rows, qtype, w=None: got.append(w[0]) or rows)
    convert_chunk(plan, 0, 4)
    convert_chunk(plan, 4, 8)
    assert got == [1.0, 2.0]


@pytest.mark.parametrize(
    ("content", "code", "fragment"),
    [
        (b"\x01\x00\x00\x00\x05\x00\x00\x00blk.0", 4, "truncated"),
        (None, 3, "no such file"),
        ("wrong-size", 3, "made for another model"),
    ],
    ids=["truncated", "missing", "another-model"],
)
def test_cli_refuses_a_bad_imatrix_with_one_line_and_no_output(
    model: Path, tmp_path: Path, content: bytes | str | None, code: int, fragment: str
) -> None:
    path = tmp_path / "bad.dat"
    if content == "wrong-size":
        write_legacy(
            path, {n: np.ones(s[-1] + 32, np.float32) for n, s in block_weights(model).items()}
        )
    elif isinstance(content, bytes):
        path.write_bytes(content)
    out = tmp_path / "out.gguf"
    exit_code, stderr = run(
        "convert", str(model), "-t", "q4_k_m", "--imatrix", str(path), "-o", str(out), "-q"
    )
    assert exit_code == code
    assert fragment in stderr and stderr.count("\n") == 1
    assert not out.exists() and list(tmp_path.glob("*.partial")) == []
