"""Expert e of a 3-D tensor is quantized with importance row e, exactly as llama-quantize does it.

tests/golden/moe_imatrix/ (tools/make_moe_imatrix_goldens.py): a hand-written GGUF imatrix for a
4-expert layer (expert 2 has a zero count, so llama-quantize weighs it with 1.0) and the type and
sha256 of each expert tensor that ``llama-quantize --imatrix`` wrote from the same BF16 values.
Here those values go through qconv's own path: read_imatrix, importance_for (ne[0]·ne[2] values,
one row per expert), _chunks (with a chunk size that would otherwise straddle experts) and
convert_chunk.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from make_moe_imatrix_goldens import EXPERT_TENSORS, GOLDEN_DIR, expert_values

from qconv import pipeline, workers
from qconv.gguf.constants import GGMLType
from qconv.imatrix import importance_for, read_imatrix
from qconv.model.transforms import GeneratedTensor
from qconv.plan.plan import TensorPlan

EXPECTED = json.loads((GOLDEN_DIR / "expected.json").read_text())
CASES = [(ftype, name) for ftype in EXPECTED for name in EXPECTED[ftype]]


def quantized(name: str, qtype: GGMLType, importance: np.ndarray) -> bytes:
    values = expert_values(name, EXPERT_TENSORS[name])
    plan = TensorPlan(name, GeneratedTensor(name, values), qtype, "golden", importance=importance)
    chunks = pipeline._chunks([plan])
    return b"".join(workers.convert_chunk(plan, *chunk[1:]).tobytes() for chunk in chunks)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # 100 rows of 256 float32 per chunk: without the split, chunk 200..300 would cross experts.
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 100 * 256 * 4)


def test_the_imatrix_gives_zero_count_experts_weight_one() -> None:
    imatrix = read_imatrix(GOLDEN_DIR / "imatrix.gguf")
    name = "blk.0.ffn_up_exps.weight"
    rows = importance_for(imatrix, name, EXPERT_TENSORS[name])
    assert rows is not None and rows.shape == (4, 256)
    assert np.all(rows[2] == 1.0) and not np.all(rows[0] == 1.0)


@pytest.mark.parametrize(("ftype", "name"), CASES, ids=[f"{f}-{n}" for f, n in CASES])
def test_expert_tensors_equal_llama_quantize_with_imatrix(ftype: str, name: str) -> None:
    qtype_name, digest = EXPECTED[ftype][name]
    imatrix = read_imatrix(GOLDEN_DIR / "imatrix.gguf")
    importance = importance_for(imatrix, name, EXPERT_TENSORS[name])
    assert importance is not None
    data = quantized(name, GGMLType[qtype_name], importance)
    assert hashlib.sha256(data).hexdigest() == digest


def test_one_importance_row_for_every_expert_would_not_match() -> None:
    name = "blk.0.ffn_gate_exps.weight"
    qtype_name, digest = EXPECTED["q4_k_m"][name]
    imatrix = read_imatrix(GOLDEN_DIR / "imatrix.gguf")
    importance = importance_for(imatrix, name, EXPERT_TENSORS[name])
    assert importance is not None
    same_row = np.repeat(importance[:1], len(importance), axis=0)
    data = quantized(name, GGMLType[qtype_name], same_row)
    assert hashlib.sha256(data).hexdigest() != digest
