"""The conversion: open the source, plan every tensor, write header then data, one chunk at a time.

This is the only module that puts source, plan, quant and writer together; the CLI calls
:func:`plan_conversion` for ``--dry-run`` and :func:`convert` otherwise.

The model is a safetensors checkpoint (converted as convert_hf_to_gguf + llama-quantize would) or a
GGUF file or split set (requantized as llama-quantize would, qconv.plan.requantize). Memory stays
flat whatever the model's size: chunks of whole rows are quantized in worker processes
(qconv.workers) and written by the parent in order, to one file or to the parts of a split set
(qconv.gguf.split), all made visible only when complete.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from qconv.errors import FormatError, OutputError, SourceError, UsageError
from qconv.gguf.constants import MAX_DIMS, MAX_TENSOR_NAME_BYTES, QUANT_SIZES, Keys
from qconv.gguf.metadata import KV, load_metadata_file, merge_kvs, parse_override
from qconv.gguf.split import assign_parts, atomic_outputs, part_path, split_kvs
from qconv.gguf.writer import GGUFWriter, alignment_of, atomic_output, encode_header, layout
from qconv.imatrix import Imatrix, imatrix_kvs, read_imatrix
from qconv.model.architecture import Architecture, select_architecture
from qconv.model.card import general_metadata, parameter_size_label
from qconv.model.config import ModelConfig
from qconv.model.hparams import block_count
from qconv.model.transforms import GeneratedTensor
from qconv.options import ConvertOptions
from qconv.plan.plan import (
    ModelFacts,
    Target,
    TensorPlan,
    parse_target,
    plan_tensors,
    tensor_rows,
)
from qconv.plan.requantize import plan_requantization, requantized_kvs
from qconv.source import (
    SUPPORTED_DTYPES,
    Source,
    TensorData,
    TensorRef,
    open_source,
)
from qconv.source.gguf import GGUFSource, is_gguf_file, open_gguf_source
from qconv.tokenizer.vocab import tokenizer_metadata
from qconv.workers import Chunk, check_jobs, chunk_results

__all__ = ["Conversion", "Report", "convert", "default_output_name", "plan_conversion"]

CHUNK_BYTES = 8 * 1024 * 1024  # float32 bytes per chunk: large enough to amortize call overhead
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Conversion:
    """A planned conversion: everything the file will hold, before any data is read."""

    source: Source | GGUFSource
    target: Target
    kvs: list[KV]
    plans: list[TensorPlan]
    warnings: list[str] = field(default_factory=list)

    @property
    def data_bytes(self) -> int:
        return sum(plan.nbytes for plan in self.plans)

    @property
    def fallbacks(self) -> list[TensorPlan]:
        return [plan for plan in self.plans if plan.fallback]


@dataclass(frozen=True, slots=True)
class Report:
    """What a finished conversion wrote."""

    conversion: Conversion
    output: str
    bytes_written: int
    seconds: float
    parts: tuple[str, ...] = ()  # every file written, in order (one unless split)


def default_output_name(source: Source | GGUFSource, target: Target) -> Path:
    """``<model name>-<TYPE>.gguf`` in the current folder, as llama.cpp users name files."""
    return Path(f"{source.name}-{target.name.upper()}.gguf")


def plan_conversion(
    model: str, options: ConvertOptions | None = None, **changes: Any
) -> Conversion:
    """Open ``model`` and decide every tensor's type and every metadata key; read no tensor data.

    ``changes`` are :class:`ConvertOptions` fields applied over ``options``. ``model`` may also be
    a GGUF file (or any part of a split set): it is then requantized as ``llama-quantize`` would.

    Raises:
        UsageError, SourceError, FormatError, QuantizationError: as described by each message.
    """
    options = (options or ConvertOptions()).updated(**changes)
    chosen = parse_target(options.target, pure=options.pure)
    imatrix = read_imatrix(options.imatrix) if options.imatrix is not None else None
    overrides = [parse_override(spec) for spec in options.metadata]
    if options.metadata_file is not None:
        overrides = load_metadata_file(options.metadata_file) + overrides
    if is_gguf_file(model):
        return _plan_gguf_input(model, options, chosen, overrides, imatrix)
    source = open_source(model, revision=options.revision)
    config = ModelConfig.from_json(source.config, _config_path(source))
    architecture = select_architecture(config, options.arch)
    tensors = _named_tensors(source, architecture)
    facts = _model_facts(architecture)
    plans = plan_tensors(tensors, chosen, strict=options.strict, facts=facts, imatrix=imatrix)
    n_params = sum(_n_elements(plan.shape) for plan in plans)
    values = dict(architecture.config.values)
    label = parameter_size_label((plan.name, plan.shape) for plan in plans)
    kvs = architecture.header() + general_metadata(source.root, values, n_params, model, label)
    kvs += architecture.metadata(chosen.ftype)
    if architecture.known and not options.no_vocab:
        assert source.root is not None
        spec = architecture.spec
        assert spec is not None
        vocab = tokenizer_metadata(
            source.root,
            values,
            pre=options.tokenizer_pre,
            rules=spec.vocab,
        )
        kvs += architecture.tokenizer_keys(
            vocab, source.root, forced_pre=options.tokenizer_pre is not None
        )
    if chosen.llama_quantize_layout or imatrix is not None:
        kvs = _llama_quantize_kv_order(kvs)
    if imatrix is not None:
        kvs += imatrix_kvs(imatrix)  # set after general.file_type, as llama-quantize does
    kvs = merge_kvs(kvs, overrides)
    warnings = _fallback_warnings(plans)
    if not architecture.known:
        warnings.insert(0, _generic_warning(architecture))
    if (towers := architecture.skipped_towers(source.tensors)) is not None:
        warnings.insert(0, towers)
    return _checked_conversion(source, chosen, kvs, plans, warnings)


def _plan_gguf_input(
    model: str,
    options: ConvertOptions,
    chosen: Target,
    overrides: list[KV],
    imatrix: Imatrix | None,
) -> Conversion:
    given = {"--revision": options.revision, "--arch": options.arch}
    given["--tokenizer-pre"] = options.tokenizer_pre
    flags = [name for name, value in given.items() if value is not None]
    flags += ["--no-vocab"] if options.no_vocab else []
    if flags:
        raise UsageError(f"{flags[0]} applies to Hugging Face checkpoints, not to GGUF input")
    gguf = open_gguf_source(model)
    plans, warnings = plan_requantization(
        gguf,
        chosen,
        strict=options.strict,
        allow_requantize=options.allow_requantize,
        imatrix=imatrix,
    )
    kvs = requantized_kvs(gguf, chosen, imatrix_kvs(imatrix) if imatrix is not None else [])
    kvs = merge_kvs(kvs, overrides)
    return _checked_conversion(gguf, chosen, kvs, plans, warnings + _fallback_warnings(plans))


def _checked_conversion(
    source: Source | GGUFSource,
    target: Target,
    kvs: list[KV],
    plans: list[TensorPlan],
    warnings: list[str],
) -> Conversion:
    # Encode the header once now: a bad name, duplicate or value fails here, before any output
    # exists, and --dry-run reports it too.
    alignment = alignment_of(kvs)
    encode_header(
        kvs, layout([(p.name, p.file_shape, p.qtype) for p in plans], alignment), alignment
    )
    return Conversion(source, target, kvs, plans, warnings)


def _config_path(source: Source) -> Path | None:
    return source.root / "config.json" if source.root is not None else None


def _named_tensors(source: Source, architecture: Architecture) -> list[tuple[str, TensorData]]:
    """(GGUF name, data) in llama.cpp's converter order: generated tensors, then the rest."""
    named: list[tuple[str, TensorData]] = [
        (name, GeneratedTensor(name, values)) for name, values in architecture.extra_tensors()
    ]
    mapped = architecture.tensors([_checked(ref) for ref in source.tensors], source.root)
    _check_gguf_names(mapped)
    return named + mapped


def _origin(data: Any) -> str:
    """The file a (possibly transformed) tensor comes from, for error messages."""
    while not hasattr(data, "path") and (hasattr(data, "base") or hasattr(data, "parts")):
        data = data.base if hasattr(data, "base") else data.parts[0]
    return str(getattr(data, "path", "checkpoint"))


def _check_gguf_names(mapped: Sequence[tuple[str, TensorData]]) -> None:
    """Names GGUF cannot hold are the checkpoint's fault: FormatError naming the file (exit 4)."""
    seen: dict[str, TensorData] = {}
    for name, data in mapped:
        size = len(name.encode("utf-8"))
        if size > MAX_TENSOR_NAME_BYTES:
            raise FormatError(
                f"{_origin(data)}: tensor name {name!r} is {size} bytes; GGUF allows at most "
                f"{MAX_TENSOR_NAME_BYTES} (use --arch to map names, or rename the tensor)"
            )
        if name in seen:
            raise FormatError(
                f"{_origin(data)}: tensors {seen[name].name!r} and {data.name!r} both map to "
                f"{name!r}; the checkpoint holds the same weight twice"
            )
        seen[name] = data


MAX_LISTED_FALLBACKS = 3


def _fallback_warnings(plans: Sequence[TensorPlan]) -> list[str]:
    """One line per fallback, or one summary line when there are many (--dry-run lists them all)."""
    fallbacks = [plan for plan in plans if plan.fallback]
    if len(fallbacks) <= MAX_LISTED_FALLBACKS:
        return [f"{plan.name}: {plan.reason}" for plan in fallbacks]
    counts = Counter(plan.qtype.name for plan in fallbacks)
    by_type = ", ".join(f"{n} -> {name}" for name, n in counts.most_common())
    return [
        f"{len(fallbacks)} of {len(plans)} tensors fell back to another type because their row "
        f"length is not a multiple of the block size ({by_type}); --dry-run lists them"
    ]


def _model_facts(architecture: Architecture) -> ModelFacts:
    config = architecture.config
    if not architecture.known:
        return ModelFacts(arch=architecture.name)
    n_head = config.optional_int("num_attention_heads", minimum=1) or 1
    n_head_kv = config.optional_int("num_key_value_heads", minimum=1) or n_head
    return ModelFacts(
        arch=architecture.quant_arch,
        n_layer=block_count(config),
        n_expert=config.first_int(("num_local_experts", "num_experts")) or 0,
        n_gqa=max(1, n_head // n_head_kv),
    )


def _llama_quantize_kv_order(kvs: list[KV]) -> list[KV]:
    """llama-quantize re-sets these two keys, which moves them to the end, in this order."""
    last = (Keys.QUANTIZATION_VERSION, Keys.FILE_TYPE)
    moved = [kv for key in last for kv in kvs if kv.key == key]
    return [kv for kv in kvs if kv.key not in last] + moved


def _generic_warning(architecture: Architecture) -> str:
    return (
        f"--arch generic: architecture {architecture.name!r} written with Hugging Face tensor "
        "names; llama.cpp will not run this file"
    )


def _n_elements(shape: tuple[int, ...]) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n


def _checked(ref: TensorRef) -> TensorRef:
    """Faults of the checkpoint itself are reported against its file (exit 3/4), not as usage."""
    if len(ref.shape) > MAX_DIMS:
        raise FormatError(
            f"{ref.path}: tensor {ref.name!r} has {len(ref.shape)} dimensions "
            f"{list(ref.shape)}; GGUF allows at most {MAX_DIMS}"
        )
    if ref.dtype not in SUPPORTED_DTYPES:
        raise SourceError(
            f"{ref.path}: tensor {ref.name!r} is {ref.dtype}; qconv converts "
            f"{', '.join(SUPPORTED_DTYPES)} tensors (cast the checkpoint to bf16 or f16 first)"
        )
    if not ref.shape or 0 in ref.shape:
        raise SourceError(f"{ref.path}: tensor {ref.name!r} is empty {list(ref.shape)}")
    return ref


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
