"""general.* metadata from model card and folder name equals what llama.cpp's converter writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from arch_fixtures import CASES, golden_kvs, golden_path, golden_tensors, write_case

from qconv.conversion import _folder_name
from qconv.errors import SourceError
from qconv.model.card import general_metadata, read_card, size_label
from qconv.model.model_id import id_to_title

SKIP = ("general.architecture", "general.type", "general.file_type", "general.quantization_version")


@pytest.mark.parametrize("name", sorted(CASES))
def test_general_kvs_equal_llama_cpp_golden(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    path = golden_path(case)
    if not path.is_file():
        pytest.skip("golden not generated")
    n_params = sum(int(np.prod(shape)) for _, _, shape, _ in golden_tensors(path))
    directory = write_case(case, tmp_path)
    ours = general_metadata(directory, case.config, n_params, directory.name)
    theirs = [g for g in golden_kvs(path) if g.key.startswith("general.") and g.key not in SKIP]
    assert [(kv.key, kv.value) for kv in ours] == [(g.key, g.value) for g in theirs]
    assert [int(kv.vtype) for kv in ours] == [g.vtype for g in theirs]


@pytest.mark.parametrize(
    ("n_params", "label"),
    [
        (28_192, "28K"),
        (135_000_000, "135M"),
        (1_235_814_400, "1.2B"),
        (8_030_261_248, "8.0B"),
        (70_553_706_496, "71B"),
        (999, "1.0K"),
    ],
)
def test_size_label_uses_llama_cpp_notation(n_params: int, label: str) -> None:
    assert size_label(n_params) == label


def test_titles_keep_versions_and_sizes() -> None:
    assert id_to_title("Llama-3.2-1B") == "Llama 3.2 1B"
    assert id_to_title("meta-llama") == "Meta Llama"
    assert id_to_title("tiny-qwen2-v1.5") == "Tiny Qwen2 v1.5"


def test_front_matter_reads_scalars_lists_and_quotes(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "---\nlicense: 'apache-2.0'\nbase_model:\n- org/a\n- org/b\nmodel_name: \"Demo\"\n"
        "extra:\n  nested: 1\n---\n# title\nlicense: not-front-matter\n",
        encoding="utf-8",
    )
    card = read_card(tmp_path)
    assert card["license"] == "apache-2.0"
    assert card["base_model"] == ["org/a", "org/b"]
    assert card["model_name"] == "Demo"
    kvs = {kv.key: kv.value for kv in general_metadata(tmp_path, {}, 0, "ignored")}
    assert kvs["general.name"] == "Demo"
    assert kvs["general.base_model.count"] == 2
    assert kvs["general.base_model.1.organization"] == "Org"
    assert "general.size_label" not in kvs


def test_no_card_names_the_model_after_its_folder() -> None:
    kvs = general_metadata(None, {"model_type": "llama"}, 1_000_000, "SmolLM-135M")
    assert [(kv.key, kv.value) for kv in kvs] == [
        ("general.name", "SmolLM 135M"),
        ("general.finetune", "135m"),  # 135M is far from 1M params: llama.cpp's context length
        ("general.basename", "SmolLM"),
        ("general.size_label", "1000K"),
    ]


def test_unreadable_model_card_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_bytes(b"---\nlicense: \xff\n---\n")
    with pytest.raises(SourceError, match="model card"):
        general_metadata(tmp_path, {}, 1, "x")


def test_card_values_llama_cpp_cannot_pack_are_left_out(tmp_path: Path) -> None:
    """gguf-py raises packing a number as a string, a float top_k or an overflowing float; qconv
    writes the rest of the metadata and leaves those keys out."""
    (tmp_path / "README.md").write_text(
        "---\nversion: 3.1\nauthor: 7\nlicense: [mit, 2]\ntags: [chat, 2024]\n---\n", "utf-8"
    )
    (tmp_path / "generation_config.json").write_text(
        '{"top_k": 20.5, "temperature": 1e39, "top_p": 0.9, "sequence": 5}', "utf-8"
    )
    kvs = {kv.key: kv.value for kv in general_metadata(tmp_path, {}, 1000, "Demo-1B")}
    assert "general.version" not in kvs and "general.author" not in kvs
    assert "general.license" not in kvs
    assert kvs["general.tags"] == ["chat"]
    assert [k for k in kvs if k.startswith("general.sampling.")] == ["general.sampling.top_p"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct"),
        ("models/Qwen3-0.6B/", "Qwen3-0.6B"),
    ],
)
def test_folder_name_is_what_the_converter_reads(spec: str, expected: str) -> None:
    assert _folder_name(spec) == expected


def test_folder_name_of_a_file_or_dot_is_its_folder(tmp_path: Path, monkeypatch: Any) -> None:
    model = tmp_path / "Llama-3.2-1B"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"")
    assert _folder_name(str(model / "model.safetensors")) == "Llama-3.2-1B"
    monkeypatch.chdir(model)
    assert _folder_name(".") == "Llama-3.2-1B"  # llama.cpp would write no general.name
