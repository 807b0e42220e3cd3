"""Architecture layer: which llama.cpp architecture a checkpoint is, and what that implies.

:func:`select_architecture` picks a family from config.json (``architectures[0]``, then
``model_type``). The returned :class:`Architecture` answers every per-architecture question
convert.py has: the GGUF name of each HF tensor (or ``None`` to drop it), the row permutation to
apply while reading, the hyperparameter metadata in the order llama.cpp's converter writes it, and
extra tensors llama.cpp needs (``rope_freqs`` for Llama 3 rope scaling).

Adding an architecture = one module with a :class:`~qconv.model.spec.Family` value, listed in
``FAMILIES``. An architecture qconv does not know converts in generic mode (HF tensor names kept,
``general.architecture`` = ``model_type``); llama.cpp will not run such a file.

KV order for a whole file, as convert_hf_to_gguf.py writes it::

    arch.header() + general_metadata(...) + arch.metadata(config, file_type)
    + tokenizer_metadata(...)

Tensor order: ``arch.extra_tensors(config)`` first, then the checkpoint's tensors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from qconv.errors import SourceError, UsageError
from qconv.gguf.metadata import KV, kv_string
from qconv.model.families import llama, mistral, qwen2, qwen3
from qconv.model.hparams import hyperparameters, llama3_rope_factors, rope_parameters
from qconv.model.spec import DROPPED_SUFFIXES, GLOBAL_TENSORS, Family

__all__ = ["FAMILIES", "GENERIC", "Architecture", "Family", "select_architecture"]

FAMILIES: tuple[Family, ...] = (llama.FAMILY, mistral.FAMILY, qwen2.FAMILY, qwen3.FAMILY)
GENERIC = "generic"

_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)")
_GLOBAL = re.compile(r"(.+)\.(weight|bias)")


@dataclass(frozen=True, slots=True)
class Architecture:
    """The chosen architecture; ``family`` is None in generic mode (``known`` False)."""

    name: str
    known: bool
    family: Family | None = None

    def header(self) -> list[KV]:
        """``general.architecture`` and ``general.type``: the first two KVs of every file."""
        return [kv_string("general.architecture", self.name), kv_string("general.type", "model")]

    def gguf_name(self, hf_name: str) -> str | None:
        """GGUF name of ``hf_name``; None for buffers llama.cpp recomputes (rotary inv_freq).

        Raises:
            SourceError: a known architecture has no GGUF name for the tensor (llama.cpp would not
                load the file); the message names the tensor and the ways out.
        """
        if hf_name.endswith(DROPPED_SUFFIXES):
            return None
        if self.family is None:
            return hf_name
        if match := _LAYER.fullmatch(hf_name):
            block, path, kind = match.groups()
            if path in self.family.layer_tensors:
                return f"blk.{int(block)}.{self.family.layer_tensors[path]}.{kind}"
        elif (match := _GLOBAL.fullmatch(hf_name)) and match.group(1) in GLOBAL_TENSORS:
            return f"{GLOBAL_TENSORS[match.group(1)]}.{match.group(2)}"
        raise SourceError(
            f"tensor {hf_name!r} has no GGUF name in architecture {self.name!r}, so llama.cpp "
            f"could not load the file; if the checkpoint is a variant qconv does not know yet, "
            f"convert with --arch {GENERIC} to keep Hugging Face names (llama.cpp will not run it)"
        )

    def row_order(
        self, hf_name: str, shape: tuple[int, ...], config: dict[str, Any]
    ) -> npt.NDArray[np.int64] | None:
        """Row permutation to read ``hf_name`` in (``rows = source[perm]``); None = as stored.

        Llama-family q_proj/k_proj rows are regrouped per head from HF's half-split RoPE layout to
        the interleaved pairs llama.cpp rotates (convert_hf_to_gguf.py's ``LlamaModel.permute``).

        Raises:
            SourceError: the row count does not split into the configured heads.
        """
        if self.family is None or not self.family.permute_qk:
            return None
        if hf_name.endswith(("self_attn.q_proj.weight", "self_attn.q_proj.bias")):
            n_head = _int(config, "num_attention_heads")
        elif hf_name.endswith(("self_attn.k_proj.weight", "self_attn.k_proj.bias")):
            n_head = _int(config, "num_key_value_heads", _int(config, "num_attention_heads"))
        else:
            return None
        rows = shape[0]
        if n_head <= 0 or rows % (2 * n_head):
            raise SourceError(
                f"tensor {hf_name!r}: {rows} rows do not split into {n_head} heads of even size "
                f"(config.json num_attention_heads / num_key_value_heads)"
            )
        perm = np.arange(rows, dtype=np.int64).reshape(n_head, 2, rows // n_head // 2)
        return np.ascontiguousarray(perm.swapaxes(1, 2)).reshape(rows)

    def metadata(self, config: dict[str, Any], file_type: int) -> list[KV]:
        """Hyperparameter KVs (with general.file_type and general.quantization_version in place).

        Raises:
            SourceError: config.json lacks a value llama.cpp requires (layer count, sizes).
        """
        return hyperparameters(self.name, self.family, config, file_type)

    def extra_tensors(self, config: dict[str, Any]) -> list[tuple[str, npt.NDArray[np.float32]]]:
        """Tensors llama.cpp needs that the checkpoint lacks; written before all others."""
        if self.family is None or not self.family.llama3_rope:
            return []
        params = rope_parameters(config)
        if str(params.get("rope_type", "")).lower() != "llama3":
            return []
        return [("rope_freqs.weight", llama3_rope_factors(self.family, config, params))]

    def tied_embeddings(self, hf_names: list[str]) -> bool:
        """True when there is no lm_head: llama.cpp then reuses token_embd, so nothing is added.

        convert_hf_to_gguf.py writes no output.weight in that case either; convert may report it.
        """
        return self.family is not None and "lm_head.weight" not in hf_names


def _int(config: dict[str, Any], key: str, default: int | None = None) -> int:
    value = config.get(key, default)
    if value is None:
        raise SourceError(f"config.json has no {key!r}")
    return int(value)


def select_architecture(config: dict[str, Any], forced: str | None = None) -> Architecture:
    """Choose the architecture from config.json, or the one named by ``--arch``.

    ``forced`` may be a GGUF architecture name, an HF architecture class, a model_type, or
    ``generic``.

    Raises:
        UsageError: ``forced`` names no architecture qconv knows.
    """
    model_type = str(config.get("model_type") or "unknown")
    if forced is not None:
        if forced == GENERIC:
            return Architecture(model_type, known=False)
        family = _lookup(forced, forced)
        if family is None:
            names = sorted(
                {f.name for f in FAMILIES} | {t for f in FAMILIES for t in f.model_types}
            )
            raise UsageError(
                f"--arch {forced!r} is not an architecture qconv knows "
                f"(known: {', '.join(names)}, or {GENERIC})"
            )
        return Architecture(family.name, known=True, family=family)
    architectures = config.get("architectures") or []
    hf_arch = str(architectures[0]) if architectures else ""
    family = _lookup(hf_arch, model_type)
    if family is None:
        return Architecture(model_type, known=False)
    return Architecture(family.name, known=True, family=family)


def _lookup(hf_arch: str, model_type: str) -> Family | None:
    for family in FAMILIES:
        if hf_arch in family.hf_architectures:
            return family
    for family in FAMILIES:
        if model_type in family.model_types or (model_type == family.name and hf_arch == ""):
            return family
    return None
