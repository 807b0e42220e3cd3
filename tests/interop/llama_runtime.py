"""Drive llama.cpp's own runtime (libllama, built from the vendored sources) from the tests.

The ctypes bindings are llama-cpp-python's llama_cpp/llama_cpp.py from the same sdist the
llama.cpp sources come from (tools/fetch_llama_cpp.sh), so the struct layouts match the library
exactly; only that module and its two small helpers are taken, never the package's __init__ (which
would pull in the high-level API and its dependencies). The library is the one tools/build_ggml.sh
builds into the qconv cache (make interop). Test code only.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import sys
import tarfile
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path(os.environ.get("QCONV_CACHE", Path.home() / ".cache" / "qconv"))
# The binding modules llama_cpp.py needs; llama_cpp/__init__.py is deliberately not among them.
BINDING_FILES = ("llama_cpp.py", "_ctypes_extensions.py", "_ggml.py")


def find_build_dir() -> Path | None:
    """The newest tools/build_ggml.sh build holding libllama, or $QCONV_LLAMA_LIB_DIR."""
    explicit = os.environ.get("QCONV_LLAMA_LIB_DIR")
    if explicit:
        return Path(explicit)
    found = sorted(CACHE.glob("llama-cpp-python-*/build/bin/libllama.so"))
    return found[-1].parent if found else None


def bindings_dir(lib_dir: Path) -> Path:
    """Unpack the ctypes bindings from the cached sdist beside the build (once) and return it."""
    version_dir = lib_dir.parent.parent  # .../llama-cpp-python-<version>/build/bin
    target = version_dir / "py" / "llama_cpp"
    if all((target / name).is_file() for name in BINDING_FILES):
        return target
    tarballs = sorted((version_dir / "dl").glob("llama_cpp_python-*.tar.gz"))
    if not tarballs:
        raise FileNotFoundError(f"no llama-cpp-python sdist in {version_dir / 'dl'}")
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarballs[-1]) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) == 3 and parts[1] == "llama_cpp" and parts[2] in BINDING_FILES:
                extracted = tar.extractfile(member)
                assert extracted is not None
                (target / parts[2]).write_bytes(extracted.read())
    return target


def load_bindings(lib_dir: Path) -> Any:
    """Import llama_cpp.llama_cpp bound to ``lib_dir``/libllama.so, bypassing the package init."""
    os.environ["LLAMA_CPP_LIB_PATH"] = str(lib_dir)
    package_dir = bindings_dir(lib_dir)
    if "llama_cpp" not in sys.modules:
        package = types.ModuleType("llama_cpp")
        package.__path__ = [str(package_dir)]
        sys.modules["llama_cpp"] = package
    return importlib.import_module("llama_cpp.llama_cpp")


@dataclass(frozen=True, slots=True)
class Generation:
    """What a greedy run produced: the sampled ids and the logits after the prompt."""

    tokens: list[int]
    prompt_logits: np.ndarray


class Runtime:
    """libllama with its log captured (shown in assertion messages instead of on stderr)."""

    def __init__(self, lib_dir: Path) -> None:
        self.lib_dir = lib_dir
        self.llama = load_bindings(lib_dir)
        self.log: list[str] = []

        def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            self.log.append(text.decode("utf-8", "replace"))

        # Kept on self: ctypes callbacks must outlive every call that may log.
        self._callback = self.llama.llama_log_callback(collect)
        self.llama.llama_log_set(self._callback, None)
        self.llama.llama_backend_init()

    def recent_log(self, n: int = 40) -> str:
        return "".join(self.log[-n:])

    @contextmanager
    def model(self, path: Path) -> Iterator[Model]:
        params = self.llama.llama_model_default_params()
        params.n_gpu_layers = 0
        self.log.clear()
        handle = self.llama.llama_model_load_from_file(str(path).encode(), params)
        if not handle:
            raise AssertionError(f"llama.cpp refused {path}:\n{self.recent_log()}")
        try:
            yield Model(self, handle)
        finally:
            self.llama.llama_model_free(handle)


class Model:
    """A loaded model: tokenize with its vocab, run greedy generation in a fresh context."""

    def __init__(self, runtime: Runtime, handle: Any) -> None:
        self.runtime = runtime
        self.llama = runtime.llama
        self.handle = handle
        self.vocab = self.llama.llama_model_get_vocab(handle)
        self.n_vocab = int(self.llama.llama_vocab_n_tokens(self.vocab))

    def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        """llama_tokenize as llama.cpp's tools call it (special tokens in text not parsed)."""
        raw = text.encode("utf-8")
        buf = (self.llama.llama_token * (len(raw) + 8))()
        n = self.llama.llama_tokenize(self.vocab, raw, len(raw), buf, len(buf), add_special, False)
        assert n >= 0, f"llama_tokenize needs {-n} slots for {text!r}"
        return [int(t) for t in buf[:n]]

    def generate(self, prompt: list[int], n_tokens: int) -> Generation:
        """Decode ``prompt`` then sample ``n_tokens`` greedily, one thread, fresh context."""
        llama = self.llama
        params = llama.llama_context_default_params()
        params.n_ctx = params.n_batch = params.n_ubatch = 64
        params.n_threads = params.n_threads_batch = 1
        ctx = llama.llama_init_from_model(self.handle, params)
        assert ctx, f"llama_init_from_model failed:\n{self.runtime.recent_log()}"
        chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_greedy())
        try:
            self._decode(ctx, prompt)
            logits = np.ctypeslib.as_array(llama.llama_get_logits_ith(ctx, -1), (self.n_vocab,))
            prompt_logits = logits.copy()
            tokens = []
            for _ in range(n_tokens):
                token = int(llama.llama_sampler_sample(chain, ctx, -1))
                tokens.append(token)
                self._decode(ctx, [token])
            return Generation(tokens, prompt_logits)
        finally:
            llama.llama_sampler_free(chain)
            llama.llama_free(ctx)

    def embed(self, tokens: list[int]) -> tuple[np.ndarray, int]:
        """(pooled sequence embedding, pooling type) as llama-embedding computes it."""
        llama = self.llama
        params = llama.llama_context_default_params()
        params.n_ctx = params.n_batch = params.n_ubatch = 64
        params.n_threads = params.n_threads_batch = 1
        params.embeddings = True
        ctx = llama.llama_init_from_model(self.handle, params)
        assert ctx, f"llama_init_from_model failed:\n{self.runtime.recent_log()}"
        try:
            array = (llama.llama_token * len(tokens))(*tokens)
            batch = llama.llama_batch_get_one(array, len(tokens))
            encoder_only = llama.llama_model_has_encoder(self.handle) and not (
                llama.llama_model_has_decoder(self.handle)
            )
            rc = (llama.llama_encode if encoder_only else llama.llama_decode)(ctx, batch)
            assert rc == 0, f"llama embedding pass returned {rc}:\n{self.runtime.recent_log()}"
            n_embd = int(llama.llama_model_n_embd(self.handle))
            pointer = llama.llama_get_embeddings_seq(ctx, 0)
            assert pointer, f"no pooled embedding:\n{self.runtime.recent_log()}"
            values = np.ctypeslib.as_array(pointer, (n_embd,)).copy()
            return values, int(llama.llama_pooling_type(ctx))
        finally:
            llama.llama_free(ctx)

    def _decode(self, ctx: Any, tokens: list[int]) -> None:
        array = (self.llama.llama_token * len(tokens))(*tokens)
        rc = self.llama.llama_decode(ctx, self.llama.llama_batch_get_one(array, len(tokens)))
        assert rc == 0, f"llama_decode returned {rc}:\n{self.runtime.recent_log()}"
