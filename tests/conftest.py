"""Shared pytest fixtures and factories.

Tests never touch the network: the hub is forced offline before huggingface_hub is imported, and
hub-path tests lay out a real cache (models--org--name/refs, blobs, snapshots) in tmp_path.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from hub_layout import make_hub_cache
from synthetic import LlamaShape, write_llama_checkpoint, write_safetensors

# Property tests draw fresh examples on every local run, to keep finding what we missed; CI
# (.ci/run sets HYPOTHESIS_PROFILE=ci) replays the seeded examples a developer already ran, so
# a submission's verdict does not depend on the draw. A failure prints its reproduce blob.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# --- gguf_bytes: a struct-based GGUF byte builder (owned by the reader tests) ---------------------
# Like tinygrad's test/unit/test_gguf.py `_build_gguf`: it spells every field out with struct so
# tests can assert parsing of exact bytes and craft hostile files. It deliberately uses neither
# qconv (the code under test) nor gguf-py. Everything is little-endian GGUF as in gguf.h.

_GGUF_VALUE_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?"}
_GGUF_VALUE_FORMATS.update({10: "<Q", 11: "<q", 12: "<d"})
_GGUF_STRING, _GGUF_ARRAY = 8, 9
# (block_size, type_size) of the ggml types the builder sizes data for; others count as 0 bytes.
_GGUF_TYPE_SIZES = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34), 12: (256, 144), 30: (1, 2)}


class GGUFBytes:
    """Builds GGUF files byte by byte. Call it for a whole file; use the parts for hostile ones.

    kvs: ``(key, value_type_id, value)``; for arrays (type 9) value is ``(item_type_id, items)``,
    and a nested array's items are again ``(item_type_id, items)`` pairs. Keys, strings and names
    may be ``bytes`` to write raw (e.g. invalid UTF-8).
    tensors: ``(name, numpy_shape, ggml_type_id)`` or with a 4th item, the offset; offsets default
    to the packed, aligned layout. shapes are written reversed (GGUF ne order).
    """

    @staticmethod
    def string(text: str | bytes) -> bytes:
        raw = text.encode("utf-8") if isinstance(text, str) else text
        return struct.pack("<Q", len(raw)) + raw

    def value(self, vtype: int, value: Any) -> bytes:
        if vtype == _GGUF_STRING:
            return self.string(value)
        if vtype == _GGUF_ARRAY:
            item_type, items = value
            body = b"".join(self.value(item_type, item) for item in items)
            return struct.pack("<IQ", item_type, len(items)) + body
        return struct.pack(_GGUF_VALUE_FORMATS[vtype], value)

    def kv(self, key: str | bytes, vtype: int, value: Any) -> bytes:
        return self.string(key) + struct.pack("<I", vtype) + self.value(vtype, value)

    @staticmethod
    def nbytes(shape: Sequence[int], type_id: int) -> int:
        block_size, type_size = _GGUF_TYPE_SIZES[type_id]
        n_elements = 1
        for dim in shape:
            n_elements *= dim
        return n_elements // block_size * type_size

    def tensor_info(
        self, name: str | bytes, shape: Sequence[int], type_id: int, offset: int
    ) -> bytes:
        ne = list(reversed(shape))  # GGUF writes the row length (NumPy's last axis) first
        dims = struct.pack(f"<I{len(ne)}Q", len(ne), *ne)
        return self.string(name) + dims + struct.pack("<IQ", type_id, offset)

    def __call__(
        self,
        kvs: Sequence[tuple[Any, int, Any]] = (),
        tensors: Sequence[tuple[Any, ...]] = (),
        *,
        version: int = 3,
        alignment: int = 32,
        data: bytes | None = None,
        n_kv: int | None = None,
        n_tensors: int | None = None,
    ) -> bytes:
        """The whole file; ``data=None`` writes zeros for each tensor, padded like a writer."""
        infos, offset, sizes = [], 0, []
        for name, shape, type_id, *explicit in tensors:
            size = self.nbytes(shape, type_id) if type_id in _GGUF_TYPE_SIZES else 0
            at = explicit[0] if explicit else offset
            infos.append(self.tensor_info(name, shape, type_id, at))
            sizes.append(size)
            offset = at + -(-size // alignment) * alignment
        header = b"GGUF" + struct.pack(
            "<IQQ",
            version,
            len(tensors) if n_tensors is None else n_tensors,
            len(kvs) if n_kv is None else n_kv,
        )
        header += b"".join(self.kv(*kv) for kv in kvs) + b"".join(infos)
        header += b"\x00" * (-len(header) % alignment)
        return header + (b"\x00" * offset if data is None else data)


@pytest.fixture
def gguf_bytes() -> GGUFBytes:
    """The GGUF byte builder (see GGUFBytes)."""
    return GGUFBytes()


# --- end gguf_bytes ------------------------------------------------------------------------------


# --- checkpoints and the offline hub (owned by the convert/source tests) --------------------------

TINY_SHAPE = LlamaShape(
    n_layers=2, hidden=256, intermediate=512, n_heads=4, n_kv_heads=2, vocab=320
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# A small byte-level BPE tokenizer (Llama 3 style, 300 tokens) from the architecture goldens.
TOKENIZER_DIR = Path(__file__).resolve().parent / "golden" / "arch" / "llama3" / "tokenizer"


def write_tiny_llama(directory: Path, **options: object) -> Path:
    """A 2-layer Llama-shaped checkpoint with config.json and tokenizer files."""
    write_llama_checkpoint(directory, TINY_SHAPE, **options)  # type: ignore[arg-type]
    for file in TOKENIZER_DIR.iterdir():
        (directory / file.name).write_bytes(file.read_bytes())
    return directory


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """A 2-layer Llama-shaped BF16 checkpoint in one model.safetensors, with a tokenizer."""
    return write_tiny_llama(tmp_path / "tiny-llama", dtype="BF16")


@pytest.fixture
def sharded_checkpoint(tmp_path: Path) -> Path:
    """The same model as tiny_checkpoint, in three shards with model.safetensors.index.json."""
    return write_tiny_llama(tmp_path / "tiny-llama-sharded", n_shards=3)


@pytest.fixture
def mixed_checkpoint(tmp_path: Path, rng: np.random.Generator) -> Path:
    """One file with F32, F16 and BF16 tensors, a 1-D norm, a bias and an odd-width matrix."""
    path = tmp_path / "mixed.safetensors"
    write_safetensors(
        path,
        {
            "w.f32.weight": ("F32", rng.standard_normal((8, 64)).astype(np.float32)),
            "w.f16.weight": ("F16", rng.standard_normal((4, 96)).astype(np.float32)),
            "w.bf16.weight": ("BF16", rng.standard_normal((16, 128)).astype(np.float32)),
            "norm.weight": ("BF16", np.ones(64, dtype=np.float32)),
            "proj.bias": ("F32", rng.standard_normal(64).astype(np.float32)),
            "odd.weight": ("BF16", rng.standard_normal((6, 100)).astype(np.float32)),
        },
    )
    return path


@pytest.fixture
def hub_cache(tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub cache holding tiny_checkpoint as 'qconv-test/tiny-llama', made the active cache."""
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "hf-home" / "hub"
    make_hub_cache(cache, "qconv-test/tiny-llama", tiny_checkpoint)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return cache
