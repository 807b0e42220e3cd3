"""The conversion: plan it (qconv.conversion), then write header then data, one chunk at a time.

This is the only module that puts plan, workers and writer together; the CLI calls
:func:`qconv.conversion.plan_conversion` for ``--dry-run`` and :func:`convert` otherwise.

The model is a safetensors checkpoint (converted as convert_hf_to_gguf + llama-quantize would) or a
GGUF file or split set (requantized as llama-quantize would, qconv.plan.requantize). Memory stays
flat whatever the model's size: chunks of whole rows are quantized by the parent and worker
processes (qconv.workers) and written by the parent in order, to one file or to the parts of a
split set (qconv.gguf.split), all made visible only when complete.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from qconv.conversion import Conversion, default_output_name, plan_conversion
from qconv.errors import OutputError, UsageError
from qconv.gguf.constants import QUANT_SIZES
from qconv.gguf.split import assign_parts, atomic_outputs, part_path, split_kvs
from qconv.gguf.writer import GGUFWriter, alignment_of, atomic_output, layout
from qconv.options import ConvertOptions
from qconv.plan.plan import (
    TensorPlan,
    tensor_rows,
)
from qconv.source import (
    Source,
)
from qconv.source.gguf import GGUFSource
from qconv.workers import Chunk, check_jobs, chunk_results

__all__ = ["Report", "convert", "write_conversion"]

# float32 bytes per chunk. Every process that quantizes holds about three chunks' worth at its
# peak (the mapped source rows, the float32 rows, the kernel's working arrays), so this sets how
# much memory a process needs above Python and NumPy. 2 MiB costs no speed (the kernels work in
# blocks of rows anyway, and cache-sized chunks are if anything faster): a 1.4 GB Qwen3-MoE to
# q8_0 peaks at about 120 MB summed over its process tree where 8 MiB chunks took 160 MB.
CHUNK_BYTES = 2 * 1024 * 1024
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Report:
    """What a finished conversion wrote."""

    conversion: Conversion
    output: str
    bytes_written: int
    seconds: float
    parts: tuple[str, ...] = ()  # every file written, in order (one unless split)


def convert(
    model: str,
    output: str | Path | IO[bytes] | None = None,
    options: ConvertOptions | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    **changes: Any,
) -> Report:
    """Convert ``model`` (file, folder or repo id) to a GGUF file at ``output``.

    ``output`` may be a path, ``None`` for the default name, or an open binary stream (the CLI's
    ``-o -``). A path is written to a temporary file and renamed only when complete. Options come
    from ``options`` and/or keyword arguments named as the CLI flags (``target="q4_k_m"``).

    Example:
        >>> convert("HuggingFaceTB/SmolLM2-135M", "smol.gguf", target="q8_0")  # doctest: +SKIP

    Raises:
        QconvError subclasses: see :func:`plan_conversion`, plus OutputError for the output.
    """
    options = (options or ConvertOptions()).updated(**changes)
    conversion = plan_conversion(model, options)
    return write_conversion(conversion, output, options, on_progress=on_progress)


def write_conversion(
    conversion: Conversion,
    output: str | Path | IO[bytes] | None,
    options: ConvertOptions | None = None,
    *,
    on_progress: ProgressCallback | None = None,
) -> Report:
    """Write a planned conversion to a path or split set (atomically), or to an open stream.

    Raises:
        UsageError: a split limit with a stream output.
        OutputError: an output exists without ``force``, or cannot be written.
    """
    options = options or ConvertOptions()
    started = time.perf_counter()
    check_jobs(options.jobs)
    max_size, max_tensors = options.split_max_size, options.split_max_tensors
    if max_size < 0 or max_tensors < 0:
        raise UsageError("--split-max-size and --split-max-tensors must be positive")
    if output is None:
        output = default_output_name(conversion.source, conversion.target)
    sizes = [plan.nbytes for plan in conversion.plans]
    part_of = assign_parts(sizes, max_tensors=max_tensors, max_size=max_size)
    if not isinstance(output, (str, Path)):
        if max_size or max_tensors:
            raise UsageError("a split set cannot go to stdout: give -o FILE with --split-max-*")
        written = _write(conversion, [output], ["<stream>"], part_of, options.jobs, on_progress)
        return Report(conversion, "-", written, time.perf_counter() - started)
    path = Path(output)
    n_parts = max(part_of, default=0) + 1
    paths = [path] if n_parts == 1 else [part_path(path, i, n_parts) for i in range(n_parts)]
    for each in paths:
        _refuse_input_as_output(conversion.source, each)
    labels = tuple(str(p) for p in paths)
    if n_parts == 1:  # one file: the writer's own atomic output
        with atomic_output(path, force=options.force) as stream:
            written = _write(conversion, [stream], labels, part_of, options.jobs, on_progress)
    else:
        with atomic_outputs(paths, force=options.force) as streams:
            written = _write(conversion, streams, labels, part_of, options.jobs, on_progress)
    return Report(conversion, labels[0], written, time.perf_counter() - started, labels)


# Files beside the checkpoint that qconv reads (config, tokenizer, model card).
INPUT_NAMES = (
    "config.json",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "added_tokens.json",
    "chat_template.json",
    "chat_template.jinja",
    "README.md",
    "modules.json",
)


def _refuse_input_as_output(source: Source | GGUFSource, path: Path) -> None:
    """Even --force must not replace the checkpoint with its own conversion (same inode)."""
    try:
        target = path.stat()
    except OSError:
        return  # nothing there yet (or unreadable: atomic_output reports that)
    inputs = list(source.files)
    if source.root is not None:
        inputs += [source.root / name for name in INPUT_NAMES]
    for file in inputs:
        with contextlib.suppress(OSError):
            info = file.stat()
            if (info.st_dev, info.st_ino) == (target.st_dev, target.st_ino):
                raise OutputError(
                    f"{path}: is an input of this conversion ({file}); choose another output path"
                )


def _write(
    conversion: Conversion,
    streams: Sequence[IO[bytes]],
    labels: Sequence[str],
    part_of: Sequence[int],
    jobs: int | None,
    on_progress: ProgressCallback | None,
) -> int:
    """Stream every tensor into the part ``part_of`` assigns it; returns the bytes written."""
    plans = conversion.plans
    writers = [GGUFWriter(s, label=label) for s, label in zip(streams, labels, strict=True)]
    part_kvs = split_kvs(conversion.kvs, len(writers), len(plans))
    for index, (writer, kvs) in enumerate(zip(writers, part_kvs, strict=True)):
        mine = [
            (p.name, p.file_shape, p.qtype)
            for p, k in zip(plans, part_of, strict=True)
            if k == index
        ]
        writer.begin(kvs, layout(mine, alignment_of(kvs)))
    todo = _chunks(plans)
    current = 0
    with chunk_results(plans, todo, jobs) as results:
        for (plan_index, *_), data in zip(todo, results, strict=False):  # results is lazy
            while current < plan_index:
                writers[part_of[current]].end_tensor()
                current += 1
            writers[part_of[plan_index]].write(data)
            if on_progress is not None:
                on_progress(data.nbytes)
    while current < len(plans):
        writers[part_of[current]].end_tensor()
        current += 1
    for writer in writers:
        writer.close()
    return sum(writer.bytes_written for writer in writers)


def _chunks(plans: Sequence[TensorPlan]) -> list[Chunk]:
    """Row ranges to quantize, or pieces of one row (whole blocks) when a row is longer than a
    chunk. None crosses from one expert's matrix into the next, since each expert has its own
    importance vector (llama_tensor_quantize_impl stops there too)."""
    chunks: list[Chunk] = []
    budget = CHUNK_BYTES // 4  # float32 elements per chunk
    for index, plan in enumerate(plans):
        n_cols = plan.shape[-1]
        n_rows = tensor_rows(plan.shape)
        # With an importance matrix ggml weighs each block by the whole row's mean square, so
        # such a row is never cut; without one, blocks are independent.
        if n_cols <= budget or plan.importance is not None:
            step = max(1, budget // n_cols)
            per_matrix = plan.rows_per_matrix
            for first in range(0, n_rows, per_matrix):
                end = first + per_matrix
                chunks += [
                    (index, start, min(start + step, end), 0, n_cols)
                    for start in range(first, end, step)
                ]
            continue
        block_size = QUANT_SIZES[plan.qtype][0]
        piece = max(block_size, budget // block_size * block_size)
        chunks += [
            (index, row, row + 1, col, min(col + piece, n_cols))
            for row in range(n_rows)
            for col in range(0, n_cols, piece)
        ]
    return chunks
