"""Which llama.cpp architecture a checkpoint is, and what that implies for its file.

:func:`select_architecture` picks a family spec from config.json (``architectures[0]``, then
``model_type``), or the one ``--arch`` names. The returned :class:`Architecture` holds the spec and
the :class:`ModelConfig` seen through that family's transformers defaults, and answers the
pipeline's questions: the header KVs, the hyperparameter KVs, the tensors in converter order.

An architecture qconv does not map is refused unless ``--arch generic`` asks for a generic file
(Hugging Face tensor names kept, ``general.architecture`` = ``model_type``), which llama.cpp does
not run.

KV order for a whole file, as convert_hf_to_gguf.py writes it::

    header() + general_metadata(...) + metadata(file_type) + tokenizer_metadata(...)

Tensor order: ``extra_tensors()`` first, then the mapped checkpoint tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from qconv.errors import SourceError, UsageError
from qconv.gguf.constants import GGML_QNT_VERSION, Keys
from qconv.gguf.metadata import KV, kv_string, kv_uint32, merge_kvs
from qconv.model.config import ModelConfig
from qconv.model.families import SPECS
from qconv.model.hparams import hyperparameters, llama3_rope_factors, rope_parameters
from qconv.model.mapping import GENERIC, VOCAB_TRANSFORMS, map_tensors, tower_modules
from qconv.model.spec import ArchSpec
from qconv.source import TensorData
from qconv.tokenizer.vocab import tokenizer_vocab_size

__all__ = ["GENERIC", "Architecture", "select_architecture"]


@dataclass(frozen=True, slots=True)
class Architecture:
    """The chosen architecture; ``spec`` is None in generic mode (``known`` False)."""

    name: str
    config: ModelConfig
    spec: ArchSpec | None = None

    @property
    def known(self) -> bool:
        return self.spec is not None

    def header(self) -> list[KV]:
        """``general.architecture`` and ``general.type``: the first KVs of every file (with the keys
        a family sets while generating tensors between them)."""
        kvs = [kv_string("general.architecture", self.name)]
        if self.spec is not None and self.spec.extra_keys is not None:
            kvs += self.spec.extra_keys(self.spec, self.config)
        return [*kvs, kv_string("general.type", "model")]

    def metadata(self, file_type: int) -> list[KV]:
        """Hyperparameter KVs (with general.file_type and general.quantization_version in place).

        Raises:
            SourceError / FormatError: config.json lacks a value llama.cpp requires or holds a
                wrong one; the message names the key.
        """
        if self.spec is None:
            return [
                kv_uint32(Keys.FILE_TYPE, file_type),
                kv_uint32(Keys.QUANTIZATION_VERSION, GGML_QNT_VERSION),
            ]
        return hyperparameters(self.spec, self.name, self.config, file_type)

    def tensors(
        self, source_tensors: Sequence[TensorData], model_dir: Path | None = None
    ) -> list[tuple[str, TensorData]]:
        """(GGUF name, data) in the converter's order; the source's names in generic mode.

        ``model_dir`` holds the tokenizer files, read when a transform trims to the vocabulary.

        Raises:
            SourceError: a tensor has no GGUF name, or the tokenizer a transform needs is missing.
        """
        if self.spec is None:
            return [(data.name, data) for data in source_tensors]
        n_vocab = None
        wanted = {name for names in self.spec.transforms.values() for name in names}
        if model_dir is not None and wanted & VOCAB_TRANSFORMS:
            n_vocab = tokenizer_vocab_size(model_dir, dict(self.config.values))
        return map_tensors(self.spec, self.config, source_tensors, n_vocab=n_vocab)

    def skipped_towers(self, source_tensors: Sequence[TensorData]) -> str | None:
        """One warning naming the vision/audio modules the text model leaves out, if any."""
        if self.spec is None:
            return None
        modules = tower_modules([data.name for data in source_tensors])
        if not modules:
            return None
        return (
            f"not converted: {', '.join(modules)} (the vision/audio tower and projector); qconv "
            "writes the text model only, llama.cpp reads the tower from a separate mmproj file"
        )

    def extra_tensors(self) -> list[tuple[str, npt.NDArray[np.float32]]]:
        """Tensors llama.cpp needs that the checkpoint lacks; written before all others."""
        if self.spec is not None and self.spec.extra_tensors is not None:
            return self.spec.extra_tensors(self.config)
        if self.spec is None or not self.spec.llama3_rope:
            return []
        params = rope_parameters(self.config)
        if str(params.get("rope_type", "")).lower() != "llama3":
            return []
        return [("rope_freqs.weight", llama3_rope_factors(self.config, params))]

    def tokenizer_keys(self, kvs: list[KV], model_dir: Path, *, forced_pre: bool) -> list[KV]:
        """The tokenizer.* KVs as this family's set_vocab leaves them.

        ``forced_pre`` is True when the user named the pre-tokenizer (--tokenizer-pre), which is
        then kept as given.
        """
        if self.spec is None:
            return kvs
        pre = next((kv for kv in kvs if kv.key == "tokenizer.ggml.pre"), None)
        if not forced_pre and pre is not None and pre.value in self.spec.pre_tokenizers:
            kvs = merge_kvs(kvs, [kv_string(pre.key, self.spec.pre_tokenizers[str(pre.value)])])
        if self.spec.tokenizer_hook is not None:
            kvs = self.spec.tokenizer_hook(self.config, model_dir, kvs)
        return kvs

    @property
    def quant_arch(self) -> str:
        """The architecture name llama-quantize's rules see."""
        return (self.spec.quant_arch if self.spec else "") or self.name


def _known_names() -> str:
    names = sorted({n for spec in SPECS for n in (*spec.hf_architectures, spec.name)})
    return ", ".join(names)


def select_architecture(config: ModelConfig, forced: str | None = None) -> Architecture:
    """Choose the architecture from config.json, or the one named by ``--arch``.

    ``forced`` may be a GGUF architecture name, an HF architecture class, a model_type, or
    ``generic``.

    Raises:
        UsageError: ``forced`` names no architecture qconv knows.
        SourceError: config.json names an architecture qconv does not map (or there is none).
    """
    model_type = config.model_type or "unknown"
    if forced == GENERIC:
        return Architecture(model_type, config)
    if forced is not None:
        spec = _lookup(forced, forced)
        if spec is None:
            raise UsageError(
                f"--arch {forced!r} is not an architecture qconv knows "
                f"(known: {_known_names()}, or {GENERIC})"
            )
    else:
        hf_arch = config.architectures[0] if config.architectures else ""
        spec = _lookup(hf_arch, model_type)
        if spec is None:
            what = (
                f"architecture {hf_arch or model_type!r} in {config.label}"
                if config.values
                else "no config.json beside the weights, so the architecture"
            )
            raise SourceError(
                f"{what} is not one qconv maps (it maps {_known_names()}); "
                f"--arch {GENERIC} writes a file with Hugging Face tensor names, which llama.cpp "
                "will not run"
            )
    return Architecture(spec.name, config.with_defaults(spec.defaults, spec.derive), spec)


def _lookup(hf_arch: str, model_type: str) -> ArchSpec | None:
    for spec in SPECS:
        if hf_arch in spec.hf_architectures:
            return spec
    for spec in SPECS:
        if model_type in spec.model_types or (model_type == spec.name and hf_arch == ""):
            return spec
    return None
