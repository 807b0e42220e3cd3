"""general.* metadata from model card and folder name equals what llama.cpp's converter writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from arch_fixtures import CASES, golden_kvs, golden_path, golden_tensors, write_case

from qconv.errors import SourceError
from qconv.model.card import general_metadata, id_to_title, read_front_matter, size_label

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
    card = read_front_matter(readme)
    assert card["license"] == "apache-2.0"
    assert card["base_model"] == ["org/a", "org/b"]
    assert card["model_name"] == "Demo"
    kvs = {kv.key: kv.value for kv in general_metadata(tmp_path, {}, 0, "ignored")}
    assert kvs["general.name"] == "Demo"
    assert kvs["general.base_model.count"] == 2
    assert kvs["general.base_model.1.organization"] == "Org"
    assert "general.size_label" not in kvs


def test_no_card_falls_back_to_repo_id_name() -> None:
    kvs = general_metadata(None, {"model_type": "llama"}, 1_000_000, "HuggingFaceTB/SmolLM-135M")
    assert [(kv.key, kv.value) for kv in kvs] == [
        ("general.name", "SmolLM 135M"),
        ("general.size_label", "1000K"),
    ]


def test_unreadable_model_card_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_bytes(b"---\nlicense: \xff\n---\n")
    with pytest.raises(SourceError, match="model card"):
        general_metadata(tmp_path, {}, 1, "x")
