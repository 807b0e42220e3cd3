"""Regenerate tests/golden/mixture/*.json: the tensor types llama-quantize really picks.

Builds (or reuses) llama-quantize from the vendored llama.cpp via tools/build_ggml.sh, writes small
Llama-shaped GGUF files (all-zero BF16 or F32 data, as convert_hf_to_gguf would lay them out:
1-D norms in F32) with the vendored gguf-py writer, runs llama-quantize for every file type qconv
offers (and --pure for some, and --imatrix for those whose choices change with one: a dummy
legacy imatrix whose one entry matches no tensor, so only has_imatrix differs), and records each
output tensor's type, read back with gguf-py's GGUFReader. The JSON also holds the input names,
shapes and types and the output tensor order, so tests/test_mixture.py can replay every case
through qconv.plan.mixture without llama.cpp.
Run: .venv/bin/python tools/make_mixture_goldens.py [case ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
LLAMA_SRC = Path.home() / ".cache/qconv/llama-cpp-python-0.3.36/src"
# The vendored gguf-py matches the llama-quantize being built; it shadows any installed gguf.
sys.path.insert(0, str(LLAMA_SRC / "gguf-py"))

import gguf  # noqa: E402

FTYPES = ["q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k",
          "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl", "iq4_xs"]  # fmt: skip
PURE_FTYPES = ["q2_k", "q4_k_m", "q5_k_s", "q6_k"]
# llama-quant.cpp changes ffn_down choices for these when an imatrix is present (q4_k_m: none).
IMATRIX_FTYPES = ["q4_0", "q5_0", "iq4_nl", "iq4_xs", "q4_k_m"]


@dataclass(frozen=True)
class Case:
    """A synthetic model: Llama hyperparameters, and how convert_hf_to_gguf would have stored it."""

    name: str
    n_layer: int
    hidden: int
    ff: int
    n_head: int
    n_head_kv: int
    vocab: int
    tied: bool
    source: str  # "BF16" or "F32": the type of every 2-D tensor
    n_expert: int = 0
    n_expert_used: int = 0
    ftypes: tuple[str, ...] = tuple(FTYPES)
    pure_ftypes: tuple[str, ...] = tuple(PURE_FTYPES)
    imatrix_ftypes: tuple[str, ...] = tuple(IMATRIX_FTYPES)


CASES = [
    Case("llama8_h256_untied_bf16", 8, 256, 512, 4, 4, 512, tied=False, source="BF16"),
    Case("llama32_h256_tied_gqa4_bf16", 32, 256, 256, 8, 2, 256, tied=True, source="BF16"),
    Case("llama30_h256_untied_gqa2_f32", 30, 256, 768, 8, 4, 256, tied=False, source="F32"),
    Case("llama8_h576_tied_bf16", 8, 576, 1536, 9, 3, 320, tied=True, source="BF16"),
    Case("llama12_h576_untied_ff608_bf16", 12, 576, 608, 9, 3, 320, tied=False, source="BF16"),
    Case("llama6_h80_untied_ff200_f32", 6, 80, 200, 5, 5, 96, tied=False, source="F32"),
    Case("llama4_moe8_h256_bf16", 4, 256, 256, 4, 4, 256, tied=False, source="BF16",
         n_expert=8, n_expert_used=2),
    Case("llama4_moe4_h576_tied_bf16", 4, 576, 256, 9, 3, 320, tied=True, source="BF16",
         n_expert=4, n_expert_used=2),
    # 80 layers with GQA is LLM_TYPE_70B, whose attn_v gets Q5_K instead of Q3_K/Q4_K.
    Case("llama80_h256_gqa8_70b_bf16", 80, 256, 256, 8, 1, 256, tied=False, source="BF16",
         ftypes=("q2_k", "q3_k_s", "q3_k_m", "q4_k_s", "q4_k_m", "iq4_xs"),
         pure_ftypes=("q4_k_m",), imatrix_ftypes=("q4_0", "iq4_xs")),
]  # fmt: skip


def layer_tensors(case: Case, i: int) -> list[tuple[str, tuple[int, ...]]]:
    """The tensors of block i in convert_hf_to_gguf's order (NumPy shapes: rows, cols)."""
    h, kv = case.hidden, case.hidden // case.n_head * case.n_head_kv
    p = f"blk.{i}."
    out = [
        (p + "attn_norm.weight", (h,)),
        (p + "attn_q.weight", (h, h)),
        (p + "attn_k.weight", (kv, h)),
        (p + "attn_v.weight", (kv, h)),
        (p + "attn_output.weight", (h, h)),
        (p + "ffn_norm.weight", (h,)),
    ]
    if case.n_expert:
        e = case.n_expert
        out += [
            (p + "ffn_gate_inp.weight", (e, h)),
            (p + "ffn_gate_exps.weight", (e, case.ff, h)),
            (p + "ffn_up_exps.weight", (e, case.ff, h)),
            (p + "ffn_down_exps.weight", (e, h, case.ff)),
        ]
    else:
        out += [
            (p + "ffn_gate.weight", (case.ff, h)),
            (p + "ffn_up.weight", (case.ff, h)),
            (p + "ffn_down.weight", (h, case.ff)),
        ]
    return out


def case_tensors(case: Case) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, source type) in write order: embeddings, blocks, output_norm, output."""
    named = [("token_embd.weight", (case.vocab, case.hidden))]
    for i in range(case.n_layer):
        named += layer_tensors(case, i)
    named.append(("output_norm.weight", (case.hidden,)))
    if not case.tied:
        named.append(("output.weight", (case.vocab, case.hidden)))
    # convert_hf_to_gguf keeps 1-D tensors (norms) and the expert router in F32.
    return [(n, s, "F32" if len(s) == 1 or "ffn_gate_inp" in n else case.source) for n, s in named]


def write_gguf(case: Case, path: Path) -> None:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(case.name)
    writer.add_block_count(case.n_layer)
    writer.add_context_length(256)
    writer.add_embedding_length(case.hidden)
    writer.add_feed_forward_length(case.ff)
    writer.add_head_count(case.n_head)
    writer.add_head_count_kv(case.n_head_kv)
    writer.add_rope_dimension_count(case.hidden // case.n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(case.vocab)
    if case.n_expert:
        writer.add_expert_count(case.n_expert)
        writer.add_expert_used_count(case.n_expert_used)
    ftype = gguf.LlamaFileType.MOSTLY_BF16 if case.source == "BF16" else gguf.LlamaFileType.ALL_F32
    writer.add_file_type(ftype)
    for name, shape, qtype in case_tensors(case):
        if qtype == "BF16":
            bf16 = gguf.GGMLQuantizationType.BF16
            writer.add_tensor(name, np.zeros(shape, np.uint16), raw_dtype=bf16)
        else:
            writer.add_tensor(name, np.zeros(shape, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_dummy_imatrix(path: Path) -> None:
    """A legacy imatrix with one entry that names no tensor: has_imatrix, but no weights used."""
    name = b"qconv.unused.weight"
    one = np.float32(1).tobytes()
    path.write_bytes(
        np.int32(1).tobytes() + np.int32(len(name)).tobytes() + name
        + np.int32(1).tobytes() + np.int32(1).tobytes() + one
    )  # fmt: skip


def quantize(
    tool: Path, src: Path, dst: Path, ftype: str, flags: list[str]
) -> tuple[list[str], dict]:
    """Run llama-quantize; return (output tensor order, {name: type name})."""
    args = [str(tool), *flags, str(src), str(dst), ftype.upper(), "1"]
    run = subprocess.run(args, capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{run.stderr[-3000:]}")
    reader = gguf.GGUFReader(str(dst))
    return [t.name for t in reader.tensors], {t.name: t.tensor_type.name for t in reader.tensors}


def make_case(case: Case, tool: Path, out_dir: Path) -> None:
    tensors = case_tensors(case)
    names = [n for n, _, _ in tensors]
    results: dict[str, list[str]] = {}
    order: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.gguf", Path(tmp) / "out.gguf"
        imatrix = Path(tmp) / "dummy.dat"
        write_gguf(case, src)
        write_dummy_imatrix(imatrix)
        runs = [(f, "", []) for f in case.ftypes]
        runs += [(f, "+pure", ["--pure"]) for f in case.pure_ftypes]
        runs += [(f, "+imatrix", ["--imatrix", str(imatrix)]) for f in case.imatrix_ftypes]
        for ftype, suffix, flags in runs:
            order, types = quantize(tool, src, dst, ftype, flags)
            results[ftype + suffix] = [types[n] for n in names]
    # One line per tensor and per run keeps the files small and their diffs readable.
    rows = ",\n".join(json.dumps([n, list(s), t]) for n, s, t in tensors)
    runs = ",\n".join(f"{json.dumps(k)}: {json.dumps(' '.join(v))}" for k, v in results.items())
    text = (
        f'{{"case": {json.dumps(asdict(case))},\n"tensors": [\n{rows}\n],\n'
        f'"llama_quantize_order": {json.dumps(" ".join(order))},\n"types": {{\n{runs}\n}}}}\n'
    )
    path = out_dir / f"{case.name}.json"
    path.write_text(text)
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes)", file=sys.stderr)


def main() -> None:
    build = subprocess.run(
        [str(REPO / "tools" / "build_ggml.sh"), "llama-quantize"],
        check=True, stdout=subprocess.PIPE, text=True,
    ).stdout.strip()  # fmt: skip
    tool = Path(build) / "bin" / "llama-quantize"
    out_dir = REPO / "tests" / "golden" / "mixture"
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = set(sys.argv[1:])
    for case in CASES:
        if not wanted or case.name in wanted:
            make_case(case, tool, out_dir)


if __name__ == "__main__":
    main()
