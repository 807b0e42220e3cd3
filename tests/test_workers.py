"""How the quantization is shared out: ``jobs`` processes quantize, the parent being one of them.

Every process holds its own Python and NumPy, so the parent quantizing a share instead of waiting
on a second worker is what keeps a conversion's whole process tree small; the bytes must not
depend on who quantized which chunk.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from synthetic import write_safetensors

from qconv import pipeline, workers
from qconv.conversion import plan_conversion
from qconv.options import ConvertOptions
from qconv.plan.plan import TensorPlan
from qconv.source.safetensors import read_safetensors_header

_QUANTIZE_HERE = workers._worker_chunk_here  # the real one, wrapped by the counter below


@pytest.fixture
def many_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 8 * 1024)  # 8 rows of 256 per chunk
    rows = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    path = tmp_path / "w.safetensors"
    write_safetensors(path, {"a.weight": ("BF16", rows), "b.weight": ("F16", rows[::-1])})
    return path


def _run(
    path: Path, jobs: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[npt.NDArray[np.uint8]], int, int]:
    """(results in order, chunks the parent quantized, most worker processes seen at once)."""
    plans = plan_conversion(str(path), ConvertOptions(target="q4_0", arch="generic")).plans
    chunks = pipeline._chunks(plans)
    in_parent = 0

    def counted(plans: list[TensorPlan], chunk: workers.Chunk) -> npt.NDArray[np.uint8]:
        nonlocal in_parent
        in_parent += 1
        return _QUANTIZE_HERE(plans, chunk)

    monkeypatch.setattr(workers, "_worker_chunk_here", counted)
    children = 0
    with workers.chunk_results(plans, chunks, jobs) as results:
        out = []
        for result in results:
            out.append(result)
            children = max(children, len(multiprocessing.active_children()))
    assert len(out) == len(chunks) == 64
    return out, in_parent, children


@pytest.mark.parametrize("jobs", [2, 3])
def test_jobs_counts_the_parent_which_quantizes_a_share_of_the_chunks(
    many_chunks: Path, jobs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone, _, none = _run(many_chunks, 1, monkeypatch)
    shared, in_parent, children = _run(many_chunks, jobs, monkeypatch)
    assert none == 0
    assert children == jobs - 1
    assert 0 < in_parent < len(shared)  # the workers took the rest
    assert all(np.array_equal(a, b) for a, b in zip(alone, shared, strict=True))


def test_bf16_f16_and_f32_rows_widen_exactly(tmp_path: Path) -> None:
    """Widening writes straight into the float32 result; it must equal NumPy's own casts."""
    values = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32) * 100
    as_f32 = (values.view(np.uint32) & 0xFFFF0000).view(np.float32)  # exact in BF16
    path = tmp_path / "w.safetensors"
    write_safetensors(
        path, {"bf": ("BF16", as_f32), "f16": ("F16", as_f32), "f32": ("F32", as_f32)}
    )
    refs = {ref.name: ref for ref in read_safetensors_header(path)}
    assert np.array_equal(refs["bf"].read_rows(1, 3).view(np.uint32), as_f32[1:3].view(np.uint32))
    assert np.array_equal(refs["f16"].read_rows(0, 4), as_f32.astype(np.float16).astype(np.float32))
    assert np.array_equal(refs["f32"].read_rows(0, 4), as_f32)
    assert np.array_equal(refs["bf"].read_row_part(2, 8, 40), as_f32[2:3, 8:40])
    assert refs["bf"].read_rows(0, 4).dtype == np.float32


def test_a_signal_during_pool_bookkeeping_is_delivered_when_it_ends() -> None:
    """A KeyboardInterrupt raised inside concurrent.futures' locks can leave one held and hang
    the shutdown; inside the bookkeeping a signal only waits, and then reaches the handler."""
    reached = []
    # Python's own handler, whatever this process inherited (a background job ignores Ctrl-C).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), workers._signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # Python would have run the handler by now
            reached.append("end of block")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert reached == ["end of block"]
