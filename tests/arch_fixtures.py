"""Small checkpoints of every covered architecture, with tokenizer files, and their golden GGUFs.

Each :class:`ArchCase` describes one tiny model (2 layers, hidden 32) in the Hugging Face layout.
``write_case(case, parent)`` writes config.json, model.safetensors (BF16, deterministic weights from
tools/synthetic.py) and the case's committed tokenizer files into ``parent / case.dir_name``.
``golden_path(case, outtype)`` is the GGUF that llama.cpp's convert_hf_to_gguf.py wrote for exactly
that checkpoint (tools/make_arch_goldens.py regenerates them); ``recorded_tokens(case)`` holds the
HF tokenizer's ids for a few strings, for the llama.cpp interop test.

Nothing here needs torch, transformers or tokenizers: the tokenizer files are committed data.
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))

from synthetic import tensor_values, to_bf16_bits, write_safetensors  # noqa: E402

GOLDEN_DIR = ROOT / "tests" / "golden" / "arch"
OUTTYPES = ("f32", "bf16", "f16", "q8_0")

# Strings whose token ids are recorded with the HF tokenizer (tokens.json) for the interop test.
SAMPLE_TEXTS = (
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    " leading space and 12345 digits",
    "naïve café — ünïcödé 🚀",
)


@dataclass(frozen=True, slots=True)
class ArchCase:
    """One tiny checkpoint: its config.json, tensor layout and tokenizer flavour."""

    name: str  # key of the case, folder name under tests/golden/arch/
    dir_name: str  # checkpoint folder name (llama.cpp derives general.name from it)
    config: dict[str, Any]
    tokenizer: str  # "bpe-llama3" | "bpe-qwen2" | "bpe-smollm" | "spm"
    pre: str  # tokenizer.ggml.pre llama.cpp must write
    attn_bias: bool = False  # Qwen2: q/k/v projections carry biases
    qk_norm: bool = False  # Qwen3: per-head RMS norms on q and k
    readme: str | None = None  # README.md model card written next to config.json
    seed: int = 0
    # Goldens kept for this case; mistral skips f32 to keep tests/golden/arch under 2 MB (its f32
    # path is the same code as llama2's, which has all four).
    outtypes: tuple[str, ...] = ("f32", "bf16", "f16", "q8_0")

    @property
    def tied(self) -> bool:
        return bool(self.config.get("tie_word_embeddings", False))


def _config(arch: str, model_type: str, vocab: int, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "architectures": [arch],
        "model_type": model_type,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "vocab_size": vocab,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "bfloat16",
    }
    config.update(overrides)
    return config


LLAMA3_README = """---
license: llama3.2
base_model: meta-llama/Llama-3.2-1B
language:
- en
tags:
- text-generation
---
# Tiny Llama 3 for tests
"""

CASES: dict[str, ArchCase] = {
    case.name: case
    for case in (
        ArchCase(
            name="llama3",
            dir_name="tiny-llama3",
            config=_config(
                "LlamaForCausalLM",
                "llama",
                300,
                bos_token_id=296,
                eos_token_id=297,
                tie_word_embeddings=True,
                rope_theta=500000.0,
                max_position_embeddings=131072,
                rope_scaling={
                    "factor": 32.0,
                    "high_freq_factor": 4.0,
                    "low_freq_factor": 1.0,
                    "original_max_position_embeddings": 8192,
                    "rope_type": "llama3",
                },
            ),
            tokenizer="bpe-llama3",
            pre="llama-bpe",
            readme=LLAMA3_README,
        ),
        ArchCase(
            name="llama2",
            dir_name="tiny-llama2",
            config=_config("LlamaForCausalLM", "llama", 384),
            tokenizer="spm",
            pre="default",
        ),
        ArchCase(
            name="mistral",
            dir_name="tiny-mistral",
            config=_config(
                "MistralForCausalLM",
                "mistral",
                384,
                rope_theta=1000000.0,
                max_position_embeddings=32768,
                sliding_window=None,
                head_dim=8,
            ),
            tokenizer="spm",
            pre="default",
            outtypes=("bf16", "f16", "q8_0"),
        ),
        ArchCase(
            name="smollm",
            dir_name="tiny-smollm",
            config=_config(
                "LlamaForCausalLM",
                "llama",
                300,
                bos_token_id=0,
                eos_token_id=0,
                tie_word_embeddings=True,
                num_key_value_heads=4,
            ),
            tokenizer="bpe-smollm",
            pre="smollm",
        ),
        ArchCase(
            name="qwen2",
            dir_name="tiny-qwen2",
            config=_config(
                "Qwen2ForCausalLM",
                "qwen2",
                300,
                bos_token_id=296,
                eos_token_id=296,
                tie_word_embeddings=True,
                rope_theta=1000000.0,
                max_position_embeddings=32768,
                rms_norm_eps=1e-6,
                use_sliding_window=False,
                max_window_layers=2,
            ),
            tokenizer="bpe-qwen2",
            pre="qwen2",
            attn_bias=True,
        ),
        ArchCase(
            name="qwen3",
            dir_name="tiny-qwen3",
            config=_config(
                "Qwen3ForCausalLM",
                "qwen3",
                300,
                bos_token_id=296,
                eos_token_id=296,
                tie_word_embeddings=True,
                rope_theta=1000000.0,
                max_position_embeddings=40960,
                rms_norm_eps=1e-6,
                head_dim=16,
                attention_bias=False,
            ),
            tokenizer="bpe-qwen2",
            pre="qwen2",
            qk_norm=True,
        ),
    )
}


def tensor_shapes(case: ArchCase) -> list[tuple[str, tuple[int, ...]]]:
    """HF tensor names and NumPy shapes of ``case``'s checkpoint, in HF's natural order."""
    c = case.config
    h, f, n_vocab = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    head_dim = c.get("head_dim") or h // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * head_dim, c["num_key_value_heads"] * head_dim
    specs: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (n_vocab, h))]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}"
        specs.append((f"{p}.input_layernorm.weight", (h,)))
        for proj, rows in (("q_proj", q), ("k_proj", kv), ("v_proj", kv)):
            specs.append((f"{p}.self_attn.{proj}.weight", (rows, h)))
            if case.attn_bias:
                specs.append((f"{p}.self_attn.{proj}.bias", (rows,)))
        specs.append((f"{p}.self_attn.o_proj.weight", (h, q)))
        if case.qk_norm:
            specs += [(f"{p}.self_attn.q_norm.weight", (head_dim,))]
            specs += [(f"{p}.self_attn.k_norm.weight", (head_dim,))]
        specs += [
            (f"{p}.post_attention_layernorm.weight", (h,)),
            (f"{p}.mlp.gate_proj.weight", (f, h)),
            (f"{p}.mlp.up_proj.weight", (f, h)),
            (f"{p}.mlp.down_proj.weight", (h, f)),
        ]
    specs.append(("model.norm.weight", (h,)))
    if not case.tied:
        specs.append(("lm_head.weight", (n_vocab, h)))
    return specs


def source_tensors(case: ArchCase) -> dict[str, np.ndarray]:
    """The checkpoint's tensors as float32, exactly as stored (BF16) in model.safetensors."""
    out = {}
    for name, shape in tensor_shapes(case):
        bits = to_bf16_bits(tensor_values(name, shape, case.seed)).astype(np.uint32) << 16
        out[name] = bits.view(np.float32)
    return out


def tokenizer_dir(case: ArchCase) -> Path:
    return GOLDEN_DIR / case.name / "tokenizer"


def golden_path(case: ArchCase, outtype: str | None = None) -> Path:
    """The golden GGUF for ``outtype``; by default the first one the case keeps."""
    return GOLDEN_DIR / case.name / f"{outtype or case.outtypes[0]}.gguf"


def recorded_tokens(case: ArchCase) -> dict[str, Any]:
    """HF tokenizer ids: ``{"texts": [...], "ids": [[...]], "ids_with_special": [[...]]}``."""
    doc: dict[str, Any] = json.loads((GOLDEN_DIR / case.name / "tokens.json").read_text("utf-8"))
    return doc


def write_case(case: ArchCase, parent: Path, *, with_tokenizer: bool = True) -> Path:
    """Write ``case``'s checkpoint under ``parent / case.dir_name`` and return that folder."""
    directory = parent / case.dir_name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(case.config, indent=2), encoding="utf-8")
    tensors = {name: ("BF16", tensor_values(name, s, case.seed)) for name, s in tensor_shapes(case)}
    write_safetensors(directory / "model.safetensors", tensors)
    if case.readme is not None:
        (directory / "README.md").write_text(case.readme, encoding="utf-8")
    if with_tokenizer and tokenizer_dir(case).is_dir():
        for item in sorted(tokenizer_dir(case).iterdir()):
            shutil.copy(item, directory / item.name)
    return directory


def checkpoint_and_golden(name: str, outtype: str, parent: Path) -> tuple[Path, Path]:
    """For the end-to-end test: (checkpoint dir written under ``parent``, golden GGUF path)."""
    case = CASES[name]
    return write_case(case, parent), golden_path(case, outtype)


@dataclass(frozen=True, slots=True)
class GoldenKV:
    """One KV of a golden file as gguf.GGUFReader reads it (value types as plain ints)."""

    key: str
    vtype: int
    item_type: int | None
    value: Any


@functools.cache
def golden_kvs(path: Path) -> list[GoldenKV]:
    """Every KV of a golden GGUF, in file order (gguf is a test-only dependency)."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    out = []
    for key, field_ in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        types = [int(t) for t in field_.types]
        out.append(GoldenKV(key, types[0], types[1] if len(types) > 1 else None, field_.contents()))
    return out


def golden_tensors(path: Path) -> list[tuple[str, int, tuple[int, ...], np.ndarray]]:
    """(name, ggml type id, NumPy-order shape, raw data) of each golden tensor, in file order."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    return [
        (t.name, int(t.tensor_type), tuple(int(d) for d in reversed(t.shape.tolist())), t.data)
        for t in reader.tensors
    ]


def assert_same_tensors(out: Path, golden: Path) -> None:
    """Same tensor names, types, shapes and order as ``golden``, and byte-identical data."""
    ours, theirs = golden_tensors(out), golden_tensors(golden)
    assert [(n, t, s) for n, t, s, _ in ours] == [(n, t, s) for n, t, s, _ in theirs]
    for (name, _, _, data), (_, _, _, expected) in zip(ours, theirs, strict=True):
        same = np.array_equal(np.asarray(data).view(np.uint8), np.asarray(expected).view(np.uint8))
        assert same, f"tensor {name} differs from {golden.name}"
