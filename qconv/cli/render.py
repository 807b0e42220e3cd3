"""What ``qconv convert`` prints: the --dry-run table, the split plan, the progress bar."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from qconv.errors import printable


@contextlib.contextmanager
def progress(total: int, quiet: bool) -> Iterator[Callable[[int], None]]:
    from tqdm import tqdm  # type: ignore[import-untyped]

    disable = quiet or not sys.stderr.isatty()
    with tqdm(
        total=total, unit="B", unit_scale=True, desc="converting", disable=disable, file=sys.stderr
    ) as bar:

        def advance(nbytes: int) -> None:
            bar.update(nbytes)

        yield advance


def render_plan(conversion: object) -> str:
    """The --dry-run table: tensor, shape, source dtype → type, bytes, reason; then the totals."""
    from qconv.conversion import Conversion

    assert isinstance(conversion, Conversion)
    rows = [("tensor", "shape", "source", "type", "bytes", "reason")]
    for plan in conversion.plans:
        shape = "×".join(str(d) for d in plan.file_shape)
        # A stacked expert tensor reads one source tensor per expert: show how many.
        n_sources = getattr(plan.data, "n_sources", 1)
        source = f"{plan.data.dtype} ×{n_sources}" if n_sources > 1 else plan.data.dtype
        name = printable(plan.name)  # names come from the checkpoint's header
        rows.append((name, shape, source, plan.qtype.name, f"{plan.nbytes:,}", plan.reason))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True))
        + "  "
        + row[5]
        for row in rows
    ]
    n_params = sum(int(_product(p.shape)) for p in conversion.plans)
    total = conversion.data_bytes
    bpw = 8 * total / n_params if n_params else 0.0
    lines.append(
        f"total: {len(conversion.plans)} tensors, {n_params:,} parameters, "
        f"{total:,} bytes of tensor data ({bpw:.2f} bits/weight), "
        f"file type {conversion.target.ftype.name}"
    )
    return "\n".join(lines)


def render_split(conversion: object, max_size: int, max_tensors: int) -> str:
    """The --dry-run line for a split: how many parts, and tensors and bytes in each."""
    from qconv.conversion import Conversion
    from qconv.gguf.split import assign_parts

    assert isinstance(conversion, Conversion)
    sizes = [plan.nbytes for plan in conversion.plans]
    part_of = assign_parts(sizes, max_tensors=max_tensors, max_size=max_size)
    n_parts = max(part_of, default=0) + 1
    counts = [part_of.count(i) for i in range(n_parts)]
    totals = [sum(n for n, k in zip(sizes, part_of, strict=True) if k == i) for i in range(n_parts)]
    each = ", ".join(f"{c} tensors/{t:,} bytes" for c, t in zip(counts, totals, strict=True))
    return f"split: {n_parts} part{'s' if n_parts > 1 else ''} ({each})"


def _product(shape: tuple[int, ...]) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n
