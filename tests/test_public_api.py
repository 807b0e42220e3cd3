"""The Python API as the README shows it, called as a user calls it: fresh interpreter, twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import qconv


def test_readme_example_runs_twice_in_one_interpreter(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    script = f"""
import pytest

import qconv
model = {str(tiny_checkpoint)!r}
first = qconv.convert(model, {str(tmp_path / "a.gguf")!r}, target="q8_0", jobs=1)
second = qconv.convert(model, {str(tmp_path / "b.gguf")!r}, target="q4_0", jobs=1)
header = qconv.read_gguf({str(tmp_path / "b.gguf")!r})
print(first.bytes_written > 0, second.bytes_written > 0, len(header.tensors) > 0)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True"]


def test_public_names_are_the_functions_not_modules() -> None:
    assert callable(qconv.convert) and callable(qconv.read_gguf)
    assert set(qconv.__all__) <= set(dir(qconv))


def test_options_record_and_keywords_give_the_same_plan(tiny_checkpoint: Path) -> None:
    by_record = qconv.plan_conversion(str(tiny_checkpoint), qconv.ConvertOptions(target="q4_0"))
    by_keyword = qconv.plan_conversion(str(tiny_checkpoint), target="q4_0")
    assert [(p.name, p.qtype) for p in by_record.plans] == [
        (p.name, p.qtype) for p in by_keyword.plans
    ]


def test_unknown_keyword_is_a_usage_error_naming_it(tiny_checkpoint: Path) -> None:
    with pytest.raises(qconv.UsageError, match="tpye"):
        qconv.convert(str(tiny_checkpoint), tpye="q4_0")


@pytest.mark.parametrize("args", [["--version"], ["info", "missing.gguf"]], ids=["version", "info"])
def test_quick_commands_load_neither_the_conversion_machinery_nor_pydantic(
    args: list[str], tmp_path: Path
) -> None:
    """The public names load on first use, and typer stays below 0.29 (which builds a pydantic
    adapter per parameter on every run): `qconv info` and `--version` start in a fraction of
    the time a conversion needs to load."""
    launcher = "import sys, qconv.launcher; sys.exit(qconv.launcher.main())"  # the console script
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", launcher, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    imported = {line.rpartition("|")[2].strip() for line in done.stderr.splitlines()}
    assert "qconv.cli.app" in imported  # the probe sees qconv's own imports
    heavy = {"qconv.conversion", "qconv.pipeline", "qconv.workers", "qconv.model", "pydantic"}
    assert not heavy & imported
