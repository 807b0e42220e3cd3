"""From the checkpoint's tensors to the GGUF tensors, in llama.cpp's converter order.

:func:`map_tensors` walks the source tensors in the converter's order (shards in order, names sorted
within a shard) and, per the architecture's spec, renames each one, applies its transforms (views
from qconv.model.transforms), splits fused tensors, and buffers per-expert tensors until a layer's
set is complete, then emits the stacks in the spec's order, exactly when the converter's
``modify_tensors`` would. Nothing here reads tensor data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from qconv.errors import SourceError
from qconv.model.config import ModelConfig
from qconv.model.spec import DROPPED_SUFFIXES, ArchSpec, FusedSpec
from qconv.model.transforms import (
    PermutedTensor,
    RowSlice,
    ShiftedTensor,
    StackedTensor,
    qk_row_order,
)
from qconv.source import TensorData

__all__ = [
    "TRANSFORMS",
    "VOCAB_TRANSFORMS",
    "TransformContext",
    "is_tower_tensor",
    "map_tensors",
    "tower_modules",
]

_GLOBAL = re.compile(r"(.+)\.(weight|bias)")
GENERIC = "generic"


@dataclass(frozen=True, slots=True)
class TransformContext:
    """What a transform may ask: the tensor's names, the config, the spec, and the number of
    tokens the tokenizer really has (``n_vocab``; None when the spec needs no such transform)."""

    hf_name: str
    gguf_name: str
    config: ModelConfig
    spec: ArchSpec
    n_vocab: int | None = None


def permute_qk(data: TensorData, ctx: TransformContext) -> TensorData:
    """Llama's RoPE row order for attn_q (query heads) and attn_k (key/value heads)."""
    n_head = ctx.config.integer("num_attention_heads", minimum=1)
    if ".attn_k." in ctx.gguf_name:
        n_head = ctx.config.integer("num_key_value_heads", n_head, minimum=1)
    rows = data.shape[0]
    if rows % (2 * n_head):
        raise SourceError(
            f"tensor {ctx.hf_name!r}: {rows} rows do not split into {n_head} heads of even size "
            f"({ctx.config.label}: num_attention_heads / num_key_value_heads)"
        )
    return PermutedTensor(data, qk_row_order(rows, n_head), ctx.hf_name)


def norm_plus_one(data: TensorData, ctx: TransformContext) -> TensorData:
    """Gemma stores RMS norm weights as w − 1; llama.cpp multiplies by w."""
    return ShiftedTensor(ctx.hf_name, data, 1.0)


def trim_vocab(data: TensorData, ctx: TransformContext) -> TensorData:
    """Only the first rows that the tokenizer has tokens for (``data_torch[:n_vocab_real]``):
    Gemma 3 pads its embedding past the tokenizer, and llama.cpp sizes the vocabulary from it."""
    if ctx.n_vocab is None or ctx.n_vocab >= data.shape[0]:
        return data  # None: names only, no tokenizer folder given (Architecture.tensors)
    return RowSlice(ctx.hf_name, data, 0, ctx.n_vocab)


# The transform library: a spec names these per GGUF tensor kind.
TRANSFORMS: Mapping[str, Callable[[TensorData, TransformContext], TensorData]] = {
    "permute_qk": permute_qk,
    "norm_plus_one": norm_plus_one,
    "trim_vocab": trim_vocab,
}
# Transforms that need TransformContext.n_vocab (the tokenizer is read only for these).
VOCAB_TRANSFORMS = frozenset({"trim_vocab"})

# Multimodal towers llama.cpp's text converter skips in every architecture
# (conversion/base.py TextModel.filter_tensors): they belong in a separate mmproj file.
_TOWER_PREFIXES = (
    "mlp", "vit.", "vpm.", "siglip2.", "conformer.", "merger.", "resampler.", "sound_encoder.",
    "sound_projection.", "speech_embeddings.",
)  # fmt: skip
_TOWER_PARTS = (
    "visual.", "vision.", "audio.", "talker.", "vision_", "audio_", "token2wav.", "code2wav.",
    "projector.", "pre_mm_projector_norm", "image_newline", "view_seperator", "patch_embed",
    "patch_embedding", "patch_merger.", "patch_merge_mlp.", "model.connector.",
)  # fmt: skip
_LANGUAGE_MODEL = "language_model."


def is_tower_tensor(hf_name: str) -> bool:
    """A vision/audio tower or projector tensor, which the text model does not convert."""
    return hf_name.startswith(_TOWER_PREFIXES) or any(p in hf_name for p in _TOWER_PARTS)


def tower_modules(hf_names: Sequence[str]) -> list[str]:
    """The top-level modules of the tower tensors among ``hf_names`` (for one warning)."""
    modules = set()
    for name in filter(is_tower_tensor, hf_names):
        parts = name.split(".")
        modules.add(".".join(parts[:2] if parts[0] == "model" and len(parts) > 2 else parts[:1]))
    return sorted(modules)


def _kind(gguf_name: str) -> str:
    """``blk.3.attn_q.weight`` -> ``attn_q``; ``token_embd.weight`` -> ``token_embd``."""
    parts = gguf_name.split(".")
    return parts[2] if parts[0] == "blk" else parts[0]


def _layer_pattern(spec: ArchSpec) -> re.Pattern[str]:
    # The suffix is optional: transformers v5 stores fused experts as bare parameters
    # (``mlp.experts.down_proj``), which the converter names ``<name>.weight``; a bare name is
    # mapped only when its path is in the spec's tables.
    return re.compile(rf"{re.escape(spec.layer_prefix)}\.(\d+)\.(.+?)(?:\.(weight|bias))?")


def _rename(spec: ArchSpec, hf_name: str) -> tuple[str, int | None, str] | None:
    """(GGUF name, layer, HF path inside the layer) for a plainly renamed tensor."""
    if match := _layer_pattern(spec).fullmatch(hf_name):
        block, path, suffix = match.groups()
        if path in spec.layer_tensors:
            gguf = spec.layer_tensors[path]
            return f"blk.{int(block)}.{gguf}.{suffix or 'weight'}", int(block), path
        return None
    if (match := _GLOBAL.fullmatch(hf_name)) and match.group(1) in spec.global_tensors:
        return f"{spec.global_tensors[match.group(1)]}.{match.group(2)}", None, match.group(1)
    return None


def _unmapped(spec: ArchSpec, hf_name: str) -> SourceError:
    return SourceError(
        f"tensor {hf_name!r} has no GGUF name in architecture {spec.name!r}, so llama.cpp could "
        f"not load the file; if the checkpoint is a variant qconv does not know yet, convert with "
        f"--arch {GENERIC} to keep Hugging Face names (llama.cpp will not run it)"
    )


def _transformed(data: TensorData, hf_name: str, gguf_name: str, spec: ArchSpec,
                 config: ModelConfig, n_vocab: int | None = None) -> TensorData:  # fmt: skip
    for transform in spec.transforms.get(_kind(gguf_name), ()):
        context = TransformContext(hf_name, gguf_name, config, spec, n_vocab)
        data = TRANSFORMS[transform](data, context)
    return data


class _ExpertBuffer:
    """Per-layer buffers of per-expert tensors, emptied as the converter empties its own."""

    def __init__(self, spec: ArchSpec, config: ModelConfig) -> None:
        assert spec.experts is not None
        self.experts = spec.experts
        self.pattern = re.compile(spec.experts.path)
        self.n_expert = config.first_int(spec.experts.count_keys, minimum=1) or 0
        self.layers: dict[int, dict[tuple[int, str], TensorData]] = {}

    def add(self, block: int, path: str, data: TensorData) -> list[tuple[str, TensorData]] | None:
        """None when ``path`` is not an expert tensor; else the stacks it completes (maybe [])."""
        match = self.pattern.fullmatch(path)
        if match is None:
            return None
        expert, projection = int(match.group(1)), match.group(2)
        if projection not in self.experts.names or not 0 <= expert < self.n_expert:
            raise SourceError(
                f"tensor 'model.layers.{block}.{path}': expert {expert} / {projection!r} is "
                f"outside the {self.n_expert} experts config.json declares"
            )
        layer = self.layers.setdefault(block, {})
        layer[(expert, projection)] = data
        if len(layer) < self.n_expert * len(self.experts.names):
            return []
        del self.layers[block]
        return [
            (
                f"blk.{block}.{self.experts.names[projection]}.weight",
                StackedTensor(
                    f"model.layers.{block}.{projection} ×{self.n_expert}",
                    tuple(layer[(e, projection)] for e in range(self.n_expert)),
                ),
            )
            for projection in self.experts.order
        ]

    def check_empty(self) -> None:
        for block, layer in self.layers.items():
            have = len(layer)
            raise SourceError(
                f"layer {block} has {have} of its {self.n_expert * len(self.experts.names)} "
                "expert tensors; the checkpoint is incomplete or config.json's expert count is "
                "wrong"
            )


def _fused_rows(fused: FusedSpec, data: TensorData) -> int:
    """Rows of each part; the converter refuses shapes that do not split (qwen.py:110-112)."""
    n_parts = len(fused.parts)
    if len(data.shape) < 2 or data.shape[-2] % n_parts or fused.ndim not in (0, len(data.shape)):
        dims = f"{fused.ndim}-D " if fused.ndim else ""
        raise SourceError(
            f"tensor {data.name!r} has shape {list(data.shape)}; a fused {dims}tensor must split "
            f"into {n_parts} equal parts ({', '.join(fused.parts)}) along its second-to-last axis"
        )
    return data.shape[-2] // n_parts


def map_tensors(
    spec: ArchSpec,
    config: ModelConfig,
    tensors: Sequence[TensorData],
    *,
    n_vocab: int | None = None,
) -> list[tuple[str, TensorData]]:
    """(GGUF name, data) for every tensor the converter would write, in its order.

    As the converter's filter_tensors: multimodal tower tensors are left out and
    ``language_model.`` is dropped from names (the text model of a multimodal checkpoint).
    ``n_vocab`` is the tokenizer's size for VOCAB_TRANSFORMS.

    Raises:
        SourceError: a tensor has no GGUF name, or a layer's experts are incomplete.
    """
    experts = _ExpertBuffer(spec, config) if spec.experts is not None else None
    fused = {f.path: f for f in spec.fused}
    layer_pattern = _layer_pattern(spec)
    rewrites = [(re.compile(pattern), replacement) for pattern, replacement in spec.name_rewrites]
    dropped = [re.compile(pattern) for pattern in spec.dropped]
    named: list[tuple[str, TensorData]] = []
    for data in tensors:
        hf_name = data.name
        if is_tower_tensor(hf_name):
            continue
        hf_name = hf_name.replace(_LANGUAGE_MODEL, "")
        for pattern, replacement in rewrites:
            hf_name = pattern.sub(replacement, hf_name)
        if hf_name.endswith(DROPPED_SUFFIXES) or any(p.fullmatch(hf_name) for p in dropped):
            continue
        layer = layer_pattern.fullmatch(hf_name)
        if layer is not None:
            block, path = int(layer.group(1)), layer.group(2)
            if experts is not None and (stacks := experts.add(block, path, data)) is not None:
                named += [(n, _transformed(d, hf_name, n, spec, config)) for n, d in stacks]
                continue
            if path in fused:
                parts = fused[path].parts
                rows = _fused_rows(fused[path], data)
                for i, part in enumerate(parts):
                    gguf_name = f"blk.{block}.{part}.{layer.group(3) or 'weight'}"
                    view = RowSlice(hf_name, data, i * rows, rows)
                    named.append((gguf_name, _transformed(view, hf_name, gguf_name, spec, config)))
                continue
        renamed = _rename(spec, hf_name)
        if renamed is None:
            raise _unmapped(spec, hf_name)
        gguf_name = renamed[0]
        named.append((gguf_name, _transformed(data, hf_name, gguf_name, spec, config, n_vocab)))
    if experts is not None:
        experts.check_empty()
    return named
