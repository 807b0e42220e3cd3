"""A small, comparable description of a GGUF file: every KV and tensor by digest, in file order.

Used on both sides of the imatrix pipeline goldens: tools/make_pipeline_imatrix_goldens.py runs it
on llama-quantize's output (with the vendored gguf-py) and stores the result as JSON, and
tests/test_pipeline_imatrix_goldens.py runs it on qconv's output (with the PyPI gguf package). The
whole files would be 100-170 KB each; the descriptions are a few KB and still name the first KV or
tensor that differs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _readable(contents: Any) -> Any:
    """The value itself when short (scalars, strings, small arrays), else its length."""
    if isinstance(contents, list):
        return contents if len(contents) <= 4 else f"[{len(contents)} items]"
    if isinstance(contents, (bytes, bytearray)):
        return f"<{len(contents)} bytes>"
    return contents


def describe_gguf(path: Path) -> dict[str, Any]:
    """{"file_sha256", "kvs": [[key, value or summary, digest of its bytes]], "tensors": [...]}.

    A tensor is [name, ggml type name, NumPy-order shape, digest of its data].
    """
    from gguf import GGUFReader

    reader = GGUFReader(path)
    kvs = []
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        raw = b"".join(np.asarray(part).tobytes() for part in field.parts)
        kvs.append([key, _readable(field.contents()), _digest(raw)])
    tensors = [
        [
            t.name,
            t.tensor_type.name,
            [int(d) for d in reversed(t.shape.tolist())],
            _digest(np.asarray(t.data).tobytes()),
        ]
        for t in reader.tensors
    ]
    return {
        "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "kvs": kvs,
        "tensors": tensors,
    }
