"""qconv's general.* KVs equal, key for key, what llama.cpp's gguf-py writes for real model names,
model cards, generation configs and config.json ``_name_or_path`` values.

The golden table (tests/golden/card/general.json) is made by tools/make_card_goldens.py with the
vendored gguf-py's ``Metadata.load`` + ``set_gguf_meta_model``; tests/card_cases.py lists inputs.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from card_cases import CASES, CardCase, write_card_case

from qconv.gguf.constants import GGUFValueType
from qconv.gguf.metadata import KV
from qconv.model.card import general_metadata, size_label
from qconv.model.metadata_override import is_override_key

GOLDEN = Path(__file__).parent / "golden" / "card" / "general.json"
TABLE: dict[str, list[list[Any]]] = json.loads(GOLDEN.read_text("utf-8"))["cases"]


def _as_read(kv: KV) -> list[Any]:
    """A KV as GGUFReader reports it: [key, value types, value], FLOAT32 values rounded."""
    types = [int(kv.vtype)] + ([int(kv.item_type)] if kv.item_type is not None else [])
    value = kv.value
    if kv.vtype == GGUFValueType.FLOAT32:
        value = struct.unpack("<f", struct.pack("<f", value))[0]
    return [kv.key, types, value]


def _label(case: CardCase) -> str:
    """The label qconv.model.card.parameter_size_label gives the case's tensors."""
    if case.experts is None:
        return size_label(case.total_params)
    shared, expert, count = case.experts
    return f"{count}x{size_label(shared + expert)}"


def test_table_covers_every_case() -> None:
    assert sorted(TABLE) == sorted(case.id for case in CASES)
    assert len({case.folder for case in CASES}) >= 30


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_general_kvs_equal_gguf_py(case: CardCase, tmp_path: Path) -> None:
    model_dir = write_card_case(case, tmp_path)
    override = {k: v for k, v in (case.override or {}).items() if is_override_key(k, v)}
    assert override == (case.override or {})
    ours = general_metadata(
        model_dir, case.config, case.total_params, model_dir.name, _label(case), override
    )
    theirs = TABLE[case.id]
    assert [kv.key for kv in ours] == [kv[0] for kv in theirs]
    assert [_as_read(kv) for kv in ours] == theirs
