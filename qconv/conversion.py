"""Planning a whole conversion: open the source, decide every tensor and every metadata key.

:func:`plan_conversion` reads headers only (safetensors JSON, GGUF header, config and tokenizer
files) and returns a :class:`Conversion`: the KVs in file order and one plan per tensor, with
offsets fixable before any data is read. ``--dry-run`` prints it; qconv.pipeline writes it.
A safetensors checkpoint is planned as convert_hf_to_gguf (+ llama-quantize) would write it, a GGUF
file or split set as llama-quantize would requantize it (qconv.plan.requantize).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qconv.errors import FormatError, SourceError, UsageError
from qconv.gguf.constants import MAX_DIMS, MAX_TENSOR_NAME_BYTES, Keys
from qconv.gguf.metadata import (
    KV,
    merge_kvs,
    metadata_file_kvs,
    parse_override,
    read_metadata_document,
)
from qconv.gguf.writer import alignment_of, encode_header, layout
from qconv.imatrix import Imatrix, imatrix_kvs, read_imatrix
from qconv.model.architecture import Architecture, select_architecture
from qconv.model.card import general_metadata, parameter_size_label
from qconv.model.config import ModelConfig
from qconv.model.hparams import block_count
from qconv.model.metadata_override import check_override, is_override_key
from qconv.model.transforms import GeneratedTensor
from qconv.options import ConvertOptions
from qconv.plan.plan import (
    ModelFacts,
    Target,
    TensorPlan,
    parse_target,
    plan_tensors,
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

__all__ = ["Conversion", "default_output_name", "plan_conversion"]


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
    document: dict[str, Any] = {}
    if options.metadata_file is not None:
        document = read_metadata_document(options.metadata_file)
    if is_gguf_file(model):
        file_kvs = metadata_file_kvs(document, options.metadata_file or Path())
        return _plan_gguf_input(model, options, chosen, file_kvs + overrides, imatrix)
    # Keys llama.cpp's own --metadata file sets go where and as llama.cpp writes them.
    card_override = {k: v for k, v in document.items() if is_override_key(k, v)}
    check_override(card_override, f"--metadata-file {options.metadata_file}")
    rest = {k: v for k, v in document.items() if k not in card_override}
    overrides = metadata_file_kvs(rest, options.metadata_file or Path()) + overrides
    source = open_source(model, revision=options.revision)
    config = ModelConfig.from_json(source.config, _config_path(source))
    architecture = select_architecture(config, options.arch)
    tensors = _named_tensors(source, architecture)
    facts = _model_facts(architecture)
    plans = plan_tensors(tensors, chosen, strict=options.strict, facts=facts, imatrix=imatrix)
    n_params = sum(_n_elements(plan.shape) for plan in plans)
    values = dict(architecture.config.values)
    label = parameter_size_label((plan.name, plan.shape) for plan in plans)
    general = general_metadata(
        source.root, source.config, n_params, _folder_name(model), label, card_override
    )
    kvs = architecture.header() + general
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


def _folder_name(model: str) -> str:
    """The name convert_hf_to_gguf reads the model's name from: the folder's, unresolved as in
    ``Path(args.model).name``; a hub id's name part, the folder ``hf download --local-dir``
    makes; a .safetensors file's folder. Where that is empty (``.``), the resolved folder's
    name: llama.cpp would write no general.name there."""
    path = Path(model).expanduser()
    if path.is_file():
        path = path.parent
    if path.name in ("", ".", ".."):
        return path.resolve().name
    return path.name


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
