"""Regenerate tests/golden/moe_imatrix/: llama-quantize --imatrix on 3-D expert tensors.

qconv's families have no MoE model yet, so this golden works a level below the pipeline: it writes
a one-layer Llama-MoE GGUF (4 experts, BF16, random expert weights from ``expert_values``) with the
vendored gguf-py, a GGUF imatrix by hand whose four experts have different importances and one has
a zero count (llama-quantize then uses 1.0 for it), runs ``llama-quantize --imatrix`` for each
file type in FTYPES, and records the type and sha256 of every expert tensor llama-quantize wrote.
tests/test_moe_imatrix_goldens.py quantizes the same values through qconv's planner lookup
(importance_for), chunking (_chunks: never across experts) and convert_chunk, and must match.
Usage: .venv/bin/python tools/make_moe_imatrix_goldens.py
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = ROOT / "tests" / "golden" / "moe_imatrix"
LLAMA_SRC = Path.home() / ".cache/qconv/llama-cpp-python-0.3.36/src"
for extra in (LLAMA_SRC / "gguf-py", ROOT / "tools"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from synthetic import to_bf16_bits  # noqa: E402

N_EXPERT, HIDDEN, FF, VOCAB = 4, 256, 256, 256
EXPERT_TENSORS = {
    "blk.0.ffn_gate_exps.weight": (N_EXPERT, FF, HIDDEN),
    "blk.0.ffn_up_exps.weight": (N_EXPERT, FF, HIDDEN),
    "blk.0.ffn_down_exps.weight": (N_EXPERT, HIDDEN, FF),
}
COUNTS = (12.0, 3.0, 0.0, 7.0)  # expert 2 never routed: llama-quantize weighs it with 1.0
FTYPES = ("q4_k_m", "q4_0", "iq4_xs")


def expert_values(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The float32 values of an expert tensor as stored in BF16 (so both sides read the same)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    # Columns of different scales, as real activations' weights have, so the weights matter.
    values = rng.standard_normal(shape).astype(np.float32) * rng.uniform(0.01, 0.2, shape[-1])
    bits = to_bf16_bits(values.astype(np.float32)).astype(np.uint32) << 16
    return bits.view(np.float32)


def imatrix_sums(name: str, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(b"sums" + name.encode()))
    return rng.uniform(0.1, 50.0, (shape[0], shape[-1])).astype(np.float32)


def write_model(path: Path) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("moe-imatrix")
    writer.add_block_count(1)
    writer.add_context_length(256)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FF)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_rope_dimension_count(HIDDEN // 4)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(VOCAB)
    writer.add_expert_count(N_EXPERT)
    writer.add_expert_used_count(2)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    bf16 = gguf.GGMLQuantizationType.BF16
    writer.add_tensor("token_embd.weight", np.zeros((VOCAB, HIDDEN), np.uint16), raw_dtype=bf16)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(HIDDEN, np.float32))
    for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
        zeros = np.zeros((HIDDEN, HIDDEN), np.uint16)
        writer.add_tensor(f"blk.0.{part}.weight", zeros, raw_dtype=bf16)
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(HIDDEN, np.float32))
    writer.add_tensor("blk.0.ffn_gate_inp.weight", np.zeros((N_EXPERT, HIDDEN), np.float32))
    for name, shape in EXPERT_TENSORS.items():
        bits = (expert_values(name, shape).view(np.uint32) >> 16).astype(np.uint16)
        writer.add_tensor(name, bits, raw_dtype=bf16)
    writer.add_tensor("output_norm.weight", np.ones(HIDDEN, np.float32))
    writer.add_tensor("output.weight", np.zeros((VOCAB, HIDDEN), np.uint16), raw_dtype=bf16)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_imatrix(path: Path) -> None:
    """tools/imatrix/imatrix.cpp save_imatrix's layout, for the expert tensors only."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch="")
    writer.add_string("general.type", "imatrix")
    writer.add_array("imatrix.datasets", ["moe.txt"])
    writer.add_uint32("imatrix.chunk_count", 5)
    writer.add_uint32("imatrix.chunk_size", 512)
    for name, shape in EXPERT_TENSORS.items():
        writer.add_tensor(f"{name}.in_sum2", imatrix_sums(name, shape))
        writer.add_tensor(f"{name}.counts", np.array(COUNTS, np.float32).reshape(N_EXPERT, 1))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> None:
    import gguf

    build = subprocess.run(
        ["bash", str(ROOT / "tools" / "build_ggml.sh"), "llama-quantize"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout.strip()
    tool = Path(build) / "bin" / "llama-quantize"
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    imatrix = GOLDEN_DIR / "imatrix.gguf"
    write_imatrix(imatrix)
    expected: dict[str, dict[str, list[str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.gguf", Path(tmp) / "out.gguf"
        write_model(src)
        for ftype in FTYPES:
            args = [str(tool), "--imatrix", str(imatrix), str(src), str(dst), ftype.upper(), "1"]
            run = subprocess.run(args, capture_output=True, text=True)
            if run.returncode:
                raise SystemExit(f"llama-quantize {ftype} failed:\n{run.stderr[-2000:]}")
            reader = gguf.GGUFReader(str(dst))
            expected[ftype] = {
                t.name: [
                    t.tensor_type.name,
                    hashlib.sha256(np.asarray(t.data).tobytes()).hexdigest(),
                ]
                for t in reader.tensors
                if t.name in EXPERT_TENSORS
            }
    (GOLDEN_DIR / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print({p.name: p.stat().st_size for p in sorted(GOLDEN_DIR.iterdir())})


if __name__ == "__main__":
    main()
