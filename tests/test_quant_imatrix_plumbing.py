"""How ``qconv.quant.quantize`` routes an importance matrix to the kernels.

The weighted kernels themselves are proven in tests/test_quant_imatrix_goldens.py; these tests pin
the dispatch contract: types that ggml quantizes without reading the weights ignore them, a wrong
length is refused, and a type without a weighted kernel refuses rather than silently ignoring one.
"""

from __future__ import annotations

import numpy as np
import pytest

import qconv.quant as quant
from qconv.errors import QuantizationError
from qconv.gguf.constants import QUANT_SIZES, GGMLType

ROWS = np.random.default_rng(1).standard_normal((3, 256)).astype(np.float32)
WEIGHTS = np.random.default_rng(2).uniform(0.1, 4.0, 256).astype(np.float32)


@pytest.mark.parametrize("qtype", sorted(quant.IGNORES_IMATRIX), ids=lambda t: t.name)
def test_types_whose_ggml_quantizer_ignores_weights_ignore_the_imatrix(qtype: GGMLType) -> None:
    with_weights = quant.quantize(ROWS, qtype, WEIGHTS)
    assert np.array_equal(with_weights, quant.quantize(ROWS, qtype))


def test_an_imatrix_with_the_wrong_length_is_refused() -> None:
    with pytest.raises(QuantizationError, match="shape"):
        quant.quantize(ROWS, GGMLType.Q4_0, WEIGHTS[:128])


def test_a_type_without_a_weighted_kernel_refuses_the_imatrix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Q8_0's module has no quantize_rows_imatrix; once not exempt, its imatrix must not vanish.
    monkeypatch.setattr(quant, "IGNORES_IMATRIX", frozenset())
    with pytest.raises(QuantizationError, match="importance-weighted kernel for Q8_0"):
        quant.quantize(ROWS, GGMLType.Q8_0, WEIGHTS)


def test_a_weighted_kernel_receives_the_rows_and_the_imatrix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def fake(rows: np.ndarray, imatrix: np.ndarray) -> np.ndarray:
        seen.append((rows, imatrix))
        return np.zeros((rows.shape[0], 256 // 32 * 18), dtype=np.uint8)

    monkeypatch.setattr(quant, "_row_function", lambda qtype, name: fake)
    quant.quantize(ROWS, GGMLType.Q4_0, WEIGHTS)
    assert len(seen) == 1
    assert np.array_equal(seen[0][0], ROWS) and np.array_equal(seen[0][1], WEIGHTS)


@pytest.mark.parametrize(
    "qtype",
    [GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.IQ4_NL, GGMLType.IQ4_XS],
    ids=lambda t: t.name,
)
def test_a_tensor_with_no_rows_quantizes_to_no_bytes_with_an_imatrix(qtype: GGMLType) -> None:
    packed = quant.quantize(np.zeros((0, 256), dtype=np.float32), qtype, WEIGHTS)
    block_size, type_size = QUANT_SIZES[qtype]
    assert packed.shape == (0, 256 // block_size * type_size)
