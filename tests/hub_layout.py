"""A real Hugging Face cache layout, built in tmp_path for offline hub tests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def make_hub_cache(cache: Path, repo_id: str, source_dir: Path, revision: str = "main") -> Path:
    """Lay out ``source_dir`` as huggingface_hub's cache does: blobs, a snapshot of links, refs."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for file in sorted(source_dir.iterdir()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / revision).write_text(commit)
    return snapshot
