"""The command line for GGUF input and split sets: part listing, info on parts, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qconv.cli import app

runner = CliRunner()
ARCH = Path(__file__).resolve().parent / "golden" / "arch"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def parts(tiny_checkpoint: Path, tmp_path: Path) -> list[Path]:
    code, out, _ = run("convert", str(tiny_checkpoint), "-t", "q8_0", "-q",
                       "-o", str(tmp_path / "m.gguf"), "--split-max-tensors", "6")  # fmt: skip
    assert code == 0
    return [Path(line) for line in out.splitlines()]


def test_convert_prints_every_part_it_wrote(parts: list[Path]) -> None:
    assert [p.name for p in parts] == [f"m-0000{i}-of-00004.gguf" for i in range(1, 5)]
    assert all(p.is_file() for p in parts)


def test_info_on_a_part_shows_the_whole_sets_totals(parts: list[Path]) -> None:
    code, out, _ = run("info", str(parts[1]))
    assert code == 0
    assert "split: part 2 of 4; whole set: 21 tensors" in out
    code, out, _ = run("info", str(parts[1]), "--json")
    split = json.loads(out)["split"]
    assert (split["no"], split["count"], split["set"]["tensors"]) == (1, 4, 21)
    assert split["parts"] == [str(p) for p in parts]
    assert split["set"]["file_type"] == "MOSTLY_Q8_0"
    assert sum(t["tensors"] for t in split["set"]["types"].values()) == 21


def test_info_on_a_lone_part_says_the_others_are_not_beside_it(parts: list[Path]) -> None:
    for path in parts[1:]:
        path.unlink()
    code, out, _ = run("info", str(parts[0]), "--json")
    assert code == 0 and json.loads(out)["split"]["set"] is None
    assert "not beside it" in run("info", str(parts[0]))[1]


def break_set(parts: list[Path], how: str, tiny_checkpoint: Path) -> None:
    """Make the set hostile: drop a part, swap in another set's part, or lie in split.count."""
    if how == "missing part":
        parts[2].unlink()
    elif how == "part of another set":
        other = parts[0].parent / "other" / "m.gguf"
        other.parent.mkdir()
        run("convert", str(tiny_checkpoint), "-t", "q8_0", "-q", "-o", str(other),
            "--split-max-tensors", "4")  # fmt: skip
        parts[2].write_bytes((other.parent / "m-00003-of-00006.gguf").read_bytes())
    else:
        data = bytearray(parts[2].read_bytes())
        at = data.index(b"split.count") + len(b"split.count") + 4
        data[at : at + 2] = (9).to_bytes(2, "little")
        parts[2].write_bytes(bytes(data))


HOSTILE = {
    "missing part": "m-00003-of-00004.gguf is missing",
    "part of another set": "belongs to another set",
    "wrong split.count": "split.count 9, but the set has 4 parts",
}


@pytest.mark.parametrize("command", ["info", "convert"])
@pytest.mark.parametrize("how", list(HOSTILE))
def test_a_hostile_split_set_is_one_line_and_exit_4(
    parts: list[Path], tiny_checkpoint: Path, command: str, how: str
) -> None:
    break_set(parts, how, tiny_checkpoint)
    extra = ["-q"] if command == "convert" else []
    code, out, err = run(command, str(parts[0]), *extra)
    assert code == 4 and out == ""
    assert err.count("\n") == 1 and HOSTILE[how] in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "-", "--split-max-size", "1M"], "-o - writes one stream"),
        (["--split-max-size", "5T"], "--split-max-size '5T'"),
        (["--split-max-tensors", "0"], "Invalid value"),
    ],
)
def test_split_usage_errors_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    code, _, err = run("convert", str(ARCH / "llama3" / "bf16.gguf"), "-t", "q4_0", *args)
    assert code == 2 and message in err


def test_requantizing_without_the_flag_is_a_usage_error(tmp_path: Path) -> None:
    args = ["convert", str(ARCH / "llama3" / "q8_0.gguf"), "-t", "q4_0", "-o"]
    code, _, err = run(*args, str(tmp_path / "a.gguf"))
    assert code == 2 and "--allow-requantize" in err and not (tmp_path / "a.gguf").exists()
    code, _, err = run(*args, str(tmp_path / "b.gguf"), "--allow-requantize")
    assert code == 0 and "warning: requantizing" in err and (tmp_path / "b.gguf").is_file()


def test_dry_run_shows_how_the_set_would_be_split(tiny_checkpoint: Path) -> None:
    code, out, _ = run("convert", str(tiny_checkpoint), "-t", "q8_0", "--dry-run",
                       "--split-max-tensors", "6")  # fmt: skip
    assert code == 0 and out.splitlines()[-1].startswith("split: 4 parts (6 tensors/")


def test_the_default_name_of_a_requantized_split_set_drops_the_part_suffix(
    parts: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run("convert", str(parts[0]), "-t", "q8_0", "-q")
    assert code == 0 and out == "m-Q8_0.gguf\n"
