"""Deterministic synthetic checkpoints in the real Hugging Face layout, for demo, tests, bench.

safetensors' NumPy API cannot write BF16, so the file format is written here by hand: an 8-byte
little-endian header length, a JSON header with dtype/shape/data_offsets per tensor, then the raw
bytes. BF16 values are produced by rounding float32 to nearest-even, as torch does.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F64": "<f8", "I32": "<i4"}


def to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bit patterns (uint16), round to nearest even."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def encode(values: np.ndarray, dtype: str) -> bytes:
    """Raw little-endian bytes of ``values`` stored as safetensors ``dtype``."""
    if dtype == "BF16":
        return to_bf16_bits(values).tobytes()
    return np.ascontiguousarray(values, dtype=SAFETENSORS_DTYPES[dtype]).tobytes()


def write_safetensors(
    path: Path,
    tensors: Mapping[str, tuple[str, np.ndarray]],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write ``{name: (dtype, array)}`` as one safetensors file (tensors in the given order)."""
    header: dict[str, object] = {"__metadata__": metadata or {"format": "pt"}}
    blobs = []
    offset = 0
    for name, (dtype, array) in tensors.items():
        blob = encode(array, dtype)
        header[name] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes with spaces
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)


@dataclass(frozen=True, slots=True)
class LlamaShape:
    """Dimensions of a Llama-family checkpoint."""

    n_layers: int = 2
    hidden: int = 256
    intermediate: int = 512
    n_heads: int = 4
    n_kv_heads: int = 2
    vocab: int = 512
    tied: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden // self.n_heads

    @property
    def n_params(self) -> int:
        return sum(int(np.prod(s)) for _, s in llama_tensor_shapes(self))


def llama_tensor_shapes(shape: LlamaShape) -> list[tuple[str, tuple[int, ...]]]:
    """HF tensor names and NumPy shapes of a Llama checkpoint, in HF's natural order."""
    h, f, kv = shape.hidden, shape.intermediate, shape.n_kv_heads * shape.head_dim
    names: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (shape.vocab, h))]
    for i in range(shape.n_layers):
        p = f"model.layers.{i}"
        names += [
            (f"{p}.input_layernorm.weight", (h,)),
            (f"{p}.self_attn.q_proj.weight", (h, h)),
            (f"{p}.self_attn.k_proj.weight", (kv, h)),
            (f"{p}.self_attn.v_proj.weight", (kv, h)),
            (f"{p}.self_attn.o_proj.weight", (h, h)),
            (f"{p}.post_attention_layernorm.weight", (h,)),
            (f"{p}.mlp.gate_proj.weight", (f, h)),
            (f"{p}.mlp.up_proj.weight", (f, h)),
            (f"{p}.mlp.down_proj.weight", (h, f)),
        ]
    names.append(("model.norm.weight", (h,)))
    if not shape.tied:
        names.append(("lm_head.weight", (shape.vocab, h)))
    return names


def llama_config(shape: LlamaShape) -> dict[str, object]:
    """A config.json for a Llama checkpoint of ``shape``."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": shape.hidden,
        "intermediate_size": shape.intermediate,
        "num_hidden_layers": shape.n_layers,
        "num_attention_heads": shape.n_heads,
        "num_key_value_heads": shape.n_kv_heads,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "vocab_size": shape.vocab,
        "tie_word_embeddings": shape.tied,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "bfloat16",
    }


def tensor_values(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Deterministic weights: norms near 1, matrices Gaussian with std 0.02, like trained models."""
    rng = np.random.default_rng([seed, *name.encode()])
    if len(shape) == 1:
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    return (0.02 * rng.standard_normal(shape)).astype(np.float32)


def write_llama_checkpoint(
    directory: Path,
    shape: LlamaShape = LlamaShape(),
    *,
    dtype: str = "BF16",
    n_shards: int = 1,
    seed: int = 0,
    extra_config: Mapping[str, object] | None = None,
) -> Path:
    """Write config.json and model.safetensors (or shards + model.safetensors.index.json)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {**llama_config(shape), **(extra_config or {})}
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    specs = llama_tensor_shapes(shape)
    groups = _split(specs, n_shards)
    weight_map: dict[str, str] = {}
    for index, group in enumerate(groups, start=1):
        file_name = (
            "model.safetensors"
            if n_shards == 1
            else f"model-{index:05d}-of-{n_shards:05d}.safetensors"
        )
        tensors = {name: (dtype, tensor_values(name, s, seed)) for name, s in group}
        write_safetensors(directory / file_name, tensors)
        weight_map.update({name: file_name for name, _ in group})
    if n_shards > 1:
        total = sum(int(np.prod(s)) * (2 if dtype != "F32" else 4) for _, s in specs)
        index_doc = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index_doc, indent=2))
    return directory


def _split(
    items: list[tuple[str, tuple[int, ...]]], n: int
) -> Iterable[list[tuple[str, tuple[int, ...]]]]:
    size = -(-len(items) // n)
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass(frozen=True, slots=True)
class MoeShape:
    """Dimensions of a Qwen3-MoE checkpoint (per-expert tensors, as the Hub stores them)."""

    n_layers: int = 12
    hidden: int = 1024
    moe_intermediate: int = 256
    n_experts: int = 64
    n_experts_used: int = 8
    n_heads: int = 16
    n_kv_heads: int = 4
    head_dim: int = 64
    vocab: int = 32000

    @property
    def n_params(self) -> int:
        return sum(int(np.prod(s)) for _, s in qwen3moe_tensor_shapes(self))


def qwen3moe_tensor_shapes(shape: MoeShape) -> list[tuple[str, tuple[int, ...]]]:
    """HF tensor names and NumPy shapes of a Qwen3-MoE checkpoint, sorted by name."""
    h, f, d = shape.hidden, shape.moe_intermediate, shape.head_dim
    names: list[tuple[str, tuple[int, ...]]] = [
        ("model.embed_tokens.weight", (shape.vocab, h)),
        ("model.norm.weight", (h,)),
        ("lm_head.weight", (shape.vocab, h)),
    ]
    for i in range(shape.n_layers):
        p = f"model.layers.{i}"
        names += [
            (f"{p}.input_layernorm.weight", (h,)),
            (f"{p}.post_attention_layernorm.weight", (h,)),
            (f"{p}.self_attn.q_proj.weight", (shape.n_heads * d, h)),
            (f"{p}.self_attn.k_proj.weight", (shape.n_kv_heads * d, h)),
            (f"{p}.self_attn.v_proj.weight", (shape.n_kv_heads * d, h)),
            (f"{p}.self_attn.o_proj.weight", (h, shape.n_heads * d)),
            (f"{p}.self_attn.q_norm.weight", (d,)),
            (f"{p}.self_attn.k_norm.weight", (d,)),
            (f"{p}.mlp.gate.weight", (shape.n_experts, h)),
        ]
        for e in range(shape.n_experts):
            names += [
                (f"{p}.mlp.experts.{e}.gate_proj.weight", (f, h)),
                (f"{p}.mlp.experts.{e}.up_proj.weight", (f, h)),
                (f"{p}.mlp.experts.{e}.down_proj.weight", (h, f)),
            ]
    return sorted(names)


def qwen3moe_config(shape: MoeShape) -> dict[str, object]:
    """A config.json for a Qwen3-MoE checkpoint of ``shape``."""
    return {
        "architectures": ["Qwen3MoeForCausalLM"],
        "model_type": "qwen3_moe",
        "hidden_size": shape.hidden,
        "intermediate_size": 4 * shape.hidden,
        "moe_intermediate_size": shape.moe_intermediate,
        "num_experts": shape.n_experts,
        "num_experts_per_tok": shape.n_experts_used,
        "num_hidden_layers": shape.n_layers,
        "num_attention_heads": shape.n_heads,
        "num_key_value_heads": shape.n_kv_heads,
        "head_dim": shape.head_dim,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "vocab_size": shape.vocab,
        "tie_word_embeddings": False,
        "bos_token_id": 296,
        "eos_token_id": 296,
        "torch_dtype": "bfloat16",
    }


def write_safetensors_streaming(
    path: Path, specs: list[tuple[str, tuple[int, ...]]], dtype: str, seed: int
) -> None:
    """Like :func:`write_safetensors` with :func:`tensor_values`, one tensor in memory at a time
    (a bench checkpoint of several GB never has to fit in memory)."""
    itemsize = np.dtype(SAFETENSORS_DTYPES[dtype]).itemsize
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in specs:
        size = int(np.prod(shape)) * itemsize
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name, shape in specs:
            f.write(encode(tensor_values(name, shape, seed), dtype))


def write_qwen3moe_checkpoint(directory: Path, shape: MoeShape, *, seed: int = 0) -> Path:
    """Write config.json and a BF16 model.safetensors of a Qwen3-MoE checkpoint."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(qwen3moe_config(shape), indent=2))
    write_safetensors_streaming(
        directory / "model.safetensors", qwen3moe_tensor_shapes(shape), "BF16", seed
    )
    return directory
