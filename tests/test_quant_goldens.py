"""Every quantizer against ggml's own C output: the committed goldens in tests/golden/quant.

tools/make_quant_goldens.py ran ggml_quantize_chunk and ggml's to_float over the row sets of
tests/quant_cases.py; qconv must reproduce both byte for byte and bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from quant_cases import CASE_NAMES, GOLDEN, float_bits, golden_inputs

from qconv.gguf.constants import GGMLType
from qconv.quant import dequantize, quantize

TYPES = [
    GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1,
    GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K,
    GGMLType.IQ4_NL, GGMLType.IQ4_XS,
]  # fmt: skip


def _golden(qtype: GGMLType, case: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(GOLDEN / f"{qtype.name.lower()}.npz") as golden:
        return golden[f"{case}.bytes"], golden[f"{case}.dequant"]


@pytest.mark.parametrize("case", CASE_NAMES)
@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_quantize_matches_ggml_golden_bytes(qtype: GGMLType, case: str) -> None:
    expected, _ = _golden(qtype, case)
    np.testing.assert_array_equal(quantize(golden_inputs()[case], qtype), expected)


@pytest.mark.parametrize("case", CASE_NAMES)
@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_dequantize_matches_ggml_golden_floats_bit_for_bit(qtype: GGMLType, case: str) -> None:
    data, expected = _golden(qtype, case)
    decoded = dequantize(data, qtype, golden_inputs()[case].shape[1])
    np.testing.assert_array_equal(float_bits(decoded), float_bits(expected))


def test_goldens_cover_every_type_qconv_quantizes() -> None:
    from qconv.quant import KERNEL_MODULES

    block_types = {
        t for t in KERNEL_MODULES if t not in (GGMLType.F32, GGMLType.F16, GGMLType.BF16)
    }
    assert set(TYPES) == block_types
    assert all((GOLDEN / f"{t.name.lower()}.npz").is_file() for t in TYPES)
