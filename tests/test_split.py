"""Split sets: part assignment as gguf-py does it, atomic writing, and hostile sets rejected."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from qconv.errors import FormatError, OutputError, QuantizationError, UsageError
from qconv.gguf.reader import read_gguf
from qconv.gguf.split import (
    assign_parts,
    parse_split_size,
    part_path,
    read_split_set,
    split_position,
)
from qconv.pipeline import convert


@pytest.mark.parametrize(
    ("text", "n_bytes"),
    [("50G", 50_000_000_000), ("500M", 500_000_000), ("20K", 20_000), ("1234", 1234)],
)
def test_split_sizes_use_the_converters_decimal_units(text: str, n_bytes: int) -> None:
    assert parse_split_size(text) == n_bytes


@pytest.mark.parametrize("text", ["0", "", "5T", "1.5G", "-3M", "G"])
def test_bad_split_sizes_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="--split-max-size"):
        parse_split_size(text)


@pytest.mark.parametrize(("max_tensors", "max_size"), [(3, 0), (0, 5000), (2, 3000), (1, 0)])
def test_parts_are_assigned_exactly_as_gguf_py_assigns_them(
    max_tensors: int, max_size: int, rng: np.random.Generator, tmp_path: Path
) -> None:
    from gguf import GGUFWriter

    sizes = [int(n) for n in rng.integers(1, 4000, size=40)] + [9000, 1, 1]
    writer = GGUFWriter(None, "llama", split_max_tensors=max_tensors, split_max_size=max_size)
    for i, n in enumerate(sizes):
        writer.add_tensor_info(f"t{i}", (n,), np.dtype(np.int8), n)
    expected = [part for part, tensors in enumerate(writer.tensors) for _ in tensors]
    assert assign_parts(sizes, max_tensors=max_tensors, max_size=max_size) == expected


def test_parts_are_named_like_the_converters() -> None:
    assert part_path(Path("out/m-Q4_K_M.gguf"), 1, 12) == Path("out/m-Q4_K_M-00002-of-00012.gguf")


@pytest.fixture
def split_set(tiny_checkpoint: Path, tmp_path: Path) -> list[Path]:
    """tiny_checkpoint as q8_0 in parts of at most 6 tensors (21 tensors: 4 parts)."""
    (tmp_path / "set").mkdir()
    report = convert(str(tiny_checkpoint), tmp_path / "set" / "m.gguf", target="q8_0",
                     split_max_tensors=6, jobs=1)  # fmt: skip
    return [Path(p) for p in report.parts]


def test_a_split_set_holds_every_tensor_once_with_split_keys(
    split_set: list[Path], tiny_checkpoint: Path, tmp_path: Path
) -> None:
    whole = convert(str(tiny_checkpoint), tmp_path / "whole.gguf", target="q8_0", jobs=1)
    parts = [read_gguf(p) for p in split_set]
    assert [split_position(p) for p in parts] == [(i, len(parts)) for i in range(len(parts))]
    names = [t.name for p in parts for t in p.tensors]
    assert names == [t.name for t in read_gguf(whole.output).tensors]
    assert all(len(p.kvs) == 3 for p in parts[1:])  # only split.* beyond the first part
    found = read_split_set(parts[1])
    assert found is not None and [p.path for p in found.parts] == split_set


def test_a_missing_part_is_a_format_error(split_set: list[Path]) -> None:
    split_set[2].unlink()
    with pytest.raises(FormatError, match=f"{split_set[2].name} is missing"):
        read_split_set(read_gguf(split_set[0]))


def test_info_on_a_lone_part_is_allowed_but_not_on_a_partial_set(split_set: list[Path]) -> None:
    for path in split_set[2:]:
        path.unlink()
    with pytest.raises(FormatError, match="is missing"):
        read_split_set(read_gguf(split_set[0]), allow_alone=True)
    split_set[1].unlink()
    alone = read_split_set(read_gguf(split_set[0]), allow_alone=True)
    assert alone is not None and len(alone.parts) == 1


def test_a_part_of_another_set_is_a_format_error(
    split_set: list[Path], tiny_checkpoint: Path, tmp_path: Path
) -> None:
    (tmp_path / "other").mkdir()
    other = convert(str(tiny_checkpoint), tmp_path / "other" / "m.gguf", target="q8_0",
                    split_max_tensors=4, jobs=1)  # fmt: skip
    shutil.copy(other.parts[1], split_set[1])
    with pytest.raises(FormatError, match="another set"):
        read_split_set(read_gguf(split_set[0]))


def test_a_wrong_split_count_is_a_format_error(split_set: list[Path]) -> None:
    data = bytearray(split_set[1].read_bytes())
    key = b"split.count"
    at = data.index(key) + len(key) + 4  # u32 value type, then the u16 value
    data[at : at + 2] = (len(split_set) + 1).to_bytes(2, "little")
    split_set[1].write_bytes(bytes(data))
    with pytest.raises(FormatError, match="split.count 5, but the set has 4 parts"):
        read_split_set(read_gguf(split_set[0]))


def test_a_renamed_part_is_a_format_error(split_set: list[Path], tmp_path: Path) -> None:
    moved = tmp_path / "renamed.gguf"
    split_set[0].rename(moved)
    with pytest.raises(FormatError, match="does not end in -00001-of-00004.gguf"):
        read_split_set(read_gguf(moved))


def test_a_failed_conversion_leaves_no_part_and_no_temporary_file(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qconv.workers

    real = qconv.workers.convert_chunk
    calls = []

    def failing(plan, *chunk):  # type: ignore[no-untyped-def]
        calls.append(plan.name)
        if len(calls) == 12:  # in the second part, after the first part's data is written
            raise QuantizationError("boom")
        return real(plan, *chunk)

    monkeypatch.setattr(qconv.workers, "convert_chunk", failing)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(QuantizationError):
        convert(str(tiny_checkpoint), out / "m.gguf", target="q8_0", split_max_tensors=6, jobs=1)
    assert list(out.iterdir()) == []


def test_an_existing_part_is_not_overwritten_without_force(
    split_set: list[Path], tiny_checkpoint: Path
) -> None:
    before = split_set[1].read_bytes()
    split_set[0].unlink()
    with pytest.raises(OutputError, match="already exists"):
        convert(str(tiny_checkpoint), split_set[0].parent / "m.gguf", target="q8_0",
                split_max_tensors=6, jobs=1)  # fmt: skip
    assert split_set[1].read_bytes() == before and not split_set[0].exists()


def test_a_split_set_cannot_go_to_a_stream(tiny_checkpoint: Path) -> None:
    with pytest.raises(UsageError, match="stdout"):
        convert(str(tiny_checkpoint), io.BytesIO(), target="q8_0", split_max_size=1000)


def test_a_wrong_split_tensors_count_is_a_format_error(split_set: list[Path]) -> None:
    data = bytearray(split_set[3].read_bytes())
    key = b"split.tensors.count"
    at = data.index(key) + len(key) + 4  # u32 value type, then the i32 value
    data[at : at + 4] = (22).to_bytes(4, "little")
    split_set[3].write_bytes(bytes(data))
    with pytest.raises(FormatError, match="split.tensors.count is 22, the first part says 21"):
        read_split_set(read_gguf(split_set[1]))


def test_ctrl_c_while_writing_a_set_leaves_nothing(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qconv.workers

    real = qconv.workers.convert_chunk
    calls = []

    def interrupted(plan, *chunk):  # type: ignore[no-untyped-def]
        calls.append(plan.name)
        if len(calls) == 20:  # in the last part
            raise KeyboardInterrupt
        return real(plan, *chunk)

    monkeypatch.setattr(qconv.workers, "convert_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert(str(tiny_checkpoint), tmp_path / "m.gguf", target="q8_0", split_max_tensors=6,
                jobs=1)  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-llama"]
