"""Regenerate tests/golden/gguf_io/: llama-quantize on GGUF inputs, and the converter's split sets.

Two kinds of golden, each a small JSON summary rather than the files themselves (which would add
up to megabytes): the whole file's sha256 and size, its metadata keys in order with their value
types, and every tensor's name, ggml type, shape, offset and sha256, all read with the vendored
sdist's gguf-py (GGUFReader), never with qconv.

- requant.json: ``llama-quantize [--allow-requantize] [--pure] IN OUT TYPE`` for IN among the
  committed converter outputs tests/golden/arch/<case>/{f32,bf16,f16,q8_0}.gguf (hidden 32: every
  K-quant falls back), and for the converter's bf16 file of the pipeline case llama3_h256_bf16
  (hidden 256: real K-quants and mixture rules). That input is not committed (150 KB); its
  summary is stored instead, and the test first proves qconv writes the same bf16 file from the
  same checkpoint. One case starts from a split set (the converter's parts of a split.json case,
  first part given); its parts' summaries are stored too.
- split.json: ``convert_hf_to_gguf.py --outtype T --split-max-tensors N`` and
  ``--split-max-size S`` on arch fixture checkpoints: one summary per part.

The converter runs in ~/.cache/qconv/convert-venv (tools/make_arch_goldens.py), llama-quantize
comes from tools/build_ggml.sh. Usage: .venv/bin/python tools/make_gguf_io_goldens.py
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = ROOT / "tests" / "golden" / "gguf_io"
ARCH_DIR = ROOT / "tests" / "golden" / "arch"
for extra in (ROOT / "tools", ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

# llama-quantize flags a case may pass; the test turns them into the ConvertOptions field.
# "--imatrix=<case>" is llama-quantize --imatrix imatrix.gguf run inside IMATRIX_DIR/<case>, the
# committed llama-imatrix output (tools/make_pipeline_imatrix_goldens.py), so that
# quantize.imatrix.file holds the bare name, as the test passes it from the same folder.
FLAGS = {"--allow-requantize": "allow_requantize", "--pure": "pure"}
IMATRIX_DIR = ROOT / "tests" / "golden" / "pipeline_imatrix"
IMATRIX_FILE = "imatrix.gguf"
H256_TYPES = ("q4_k_m", "q4_k_s", "q5_k_m", "q5_k_s", "q6_k", "q3_k_s", "q3_k_m", "q3_k_l", "q2_k",
              "q8_0", "q4_0", "q4_1", "q5_0", "q5_1")  # fmt: skip

# (case id, input: arch golden path, "pipeline:<case>" or "split:<case>", type, flags)
REQUANT_CASES: list[tuple[str, str, str, tuple[str, ...]]] = [
    *[
        (f"{arch}-{src}-{ftype}", f"{arch}/{src}.gguf", ftype, ())
        for arch, src in (("llama3", "bf16"), ("llama3", "f16"), ("qwen3", "bf16"))
        for ftype in ("q4_k_m", "q8_0", "q6_k", "q4_0")
    ],
    ("llama2-f16-q2_k", "llama2/f16.gguf", "q2_k", ()),
    ("llama3-q8_0-q4_0-allow", "llama3/q8_0.gguf", "q4_0", ("--allow-requantize",)),
    # float targets and an F32 source
    ("qwen3-f32-f16", "qwen3/f32.gguf", "f16", ()),
    ("qwen3-f32-q5_k_m", "qwen3/f32.gguf", "q5_k_m", ()),
    ("llama3-bf16-f32", "llama3/bf16.gguf", "f32", ()),
    ("llama3-f16-bf16", "llama3/f16.gguf", "bf16", ()),
    # hidden 256: real K-quant blocks and every mixture rule llama-quantize applies there
    *[(f"h256-bf16-{t}", "pipeline:llama3_h256_bf16", t, ()) for t in H256_TYPES],
    ("h256-bf16-q4_k-pure", "pipeline:llama3_h256_bf16", "q4_k", ("--pure",)),
    *[
        (f"h256-bf16-imatrix-{t}", "pipeline:llama3_h256_bf16", t, ("--imatrix=llama3_h256_bf16",))
        for t in ("q4_k_m", "q4_0", "q2_k", "iq4_xs")
    ],
    # MoE (tests/family_fixtures.py checkpoints): expert counts from the file's metadata, 3-D
    # tensors, Qwen2-MoE's (1, n_embd) shared-expert gate that llama-quantize writes 1-D
    ("qwen2moe-q4_k_m", "family:qwen2moe_h256", "q4_k_m", ()),
    ("qwen3moe-q3_k_s", "family:qwen3moe_h64", "q3_k_s", ()),
    ("mixtral-q4_k_m", "family:mixtral_h256", "q4_k_m", ()),
    # A split set as input, given by its first part: the converter's parts of SPLIT_CASES' entry.
    ("qwen2-bf16-split-q4_k_m", "split:qwen2-bf16-t5", "q4_k_m", ()),
]

# (case id, arch fixture, outtype, converter split arguments)
SPLIT_CASES: list[tuple[str, str, str, list[str]]] = [
    ("llama3-q8_0-t7", "llama3", "q8_0", ["--split-max-tensors", "7"]),
    ("llama3-f16-20K", "llama3", "f16", ["--split-max-size", "20K"]),
    ("qwen2-bf16-t5", "qwen2", "bf16", ["--split-max-tensors", "5"]),
    ("smollm-f32-t100", "smollm", "f32", ["--split-max-tensors", "100"]),  # fits one part
]


def summarize(path: Path) -> dict[str, Any]:
    """sha256, size, KV keys and types in order, tensors with offsets and sha256 (gguf-py)."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    kvs = [
        [key, [int(t) for t in field.types]]
        for key, field in reader.fields.items()
        if not key.startswith("GGUF.")
    ]
    tensors = [
        [
            t.name,
            int(t.tensor_type),
            [int(d) for d in reversed(t.shape.tolist())],
            int(t.data_offset),
            hashlib.sha256(t.data.tobytes()).hexdigest()[:32],  # 128 bits; the file's is whole
        ]
        for t in reader.tensors
    ]
    data = path.read_bytes()
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "kvs": kvs,
        "tensors": tensors,
    }


def quantize(tool: Path, src: Path, dst: Path, ftype: str, flags: tuple[str, ...]) -> None:
    options, cwd = [], None
    for flag in flags:
        if flag.startswith("--imatrix="):
            cwd = IMATRIX_DIR / flag.split("=", 1)[1]
            options += ["--imatrix", IMATRIX_FILE]
        else:
            options.append(flag)
    args = [str(tool), *options, str(src.resolve()), str(dst.resolve())]
    run = subprocess.run([*args, ftype.upper(), "1"], capture_output=True, text=True, cwd=cwd)
    if run.returncode != 0:
        raise SystemExit(f"llama-quantize {ftype} on {src} failed:\n{run.stderr[-2000:]}")


def pipeline_input(case_name: str, tmp: Path, src: Path) -> Path:
    import make_arch_goldens as hf
    from make_pipeline_goldens import CASES, write_checkpoint

    case = CASES[case_name]
    out = tmp / f"{case_name}-{case.outtype}.gguf"
    if not out.exists():
        model = write_checkpoint(case, tmp / case_name)
        hf.convert(case.arch_case().pre, model, case.outtype, out, src)
    return out


def family_input(case_name: str, tmp: Path, src: Path) -> Path:
    """The converter's lossless file (bf16, or f32 for an F32 case) of a family checkpoint."""
    import make_arch_goldens as hf
    from family_fixtures import CASES, write_checkpoint

    case = CASES[case_name]
    outtype = "bf16" if case.dtype == "BF16" else "f32"
    out = tmp / f"{case_name}-{outtype}.gguf"
    if not out.exists():
        model = write_checkpoint(case, tmp / case_name)
        hf.convert(case.pre, model, outtype, out, src)
    return out


def split_parts(case_id: str, tmp: Path, src: Path) -> list[Path]:
    """The converter's split set for a SPLIT_CASES entry, written under ``tmp``."""
    import make_arch_goldens as hf
    from arch_fixtures import CASES, write_case

    _, arch, outtype, split_args = next(c for c in SPLIT_CASES if c[0] == case_id)
    out_dir = tmp / f"{case_id}-out"
    if not out_dir.is_dir():
        model = write_case(CASES[arch], tmp / case_id)
        out_dir.mkdir()
        hf.convert_with(CASES[arch].pre, model, outtype, out_dir / "model.gguf", src, split_args)
    return sorted(out_dir.glob("*.gguf"))


def make_requant(src: Path, tmp: Path) -> dict[str, Any]:
    from make_pipeline_goldens import build_llama_quantize

    tool = build_llama_quantize()
    doc: dict[str, Any] = {}
    inputs: dict[str, Any] = {}
    for case_id, source, ftype, flags in REQUANT_CASES:
        if source.startswith("pipeline:"):
            name = source.split(":", 1)[1]
            path = pipeline_input(name, tmp, src)
            inputs[source] = summarize(path)
        elif source.startswith("family:"):
            path = family_input(source.split(":", 1)[1], tmp, src)
            inputs[source] = summarize(path)
        elif source.startswith("split:"):
            parts = split_parts(source.split(":", 1)[1], tmp, src)
            inputs[source] = {part.name: summarize(part) for part in parts}
            path = parts[0]
        else:
            path = ARCH_DIR / source
        out = tmp / f"{case_id}.gguf"
        quantize(tool, path, out, ftype, flags)
        doc[case_id] = {
            "input": source,
            "type": ftype,
            "flags": list(flags),
            "output": summarize(out),
        }
        print(case_id, doc[case_id]["output"]["size"])
    return {"inputs": inputs, "cases": doc}


def make_split(src: Path, tmp: Path) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for case_id, arch, outtype, split_args in SPLIT_CASES:
        parts = split_parts(case_id, tmp, src)
        doc[case_id] = {
            "arch": arch,
            "type": outtype,
            "args": split_args,
            "parts": {part.name: summarize(part) for part in parts},
        }
        print(case_id, [p.name for p in parts])
    return doc


MAKERS = {"requant": make_requant, "split": make_split}


def dump(value: Any, indent: str = "") -> str:
    """JSON with objects one key a line and each KV or tensor record on one line (short diffs)."""
    if isinstance(value, dict):
        inner = indent + " "
        items = [f"{inner}{json.dumps(k)}: {dump(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}" if items else "{}"
    if isinstance(value, list) and value and isinstance(value[0], list):
        inner = indent + " "
        return "[\n" + ",\n".join(inner + json.dumps(v) for v in value) + f"\n{indent}]"
    return json.dumps(value)


def main() -> None:
    import argparse

    import make_arch_goldens as hf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kinds", nargs="*", help=f"some of {', '.join(MAKERS)} (default: all)")
    args = parser.parse_args()
    unknown = set(args.kinds) - set(MAKERS)
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    hf.ensure_venv()
    src = hf.llama_cpp_root()
    sys.path.insert(0, str(src / "gguf-py"))  # the sdist's gguf-py, not the PyPI wheel
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for kind in args.kinds or list(MAKERS):
        with tempfile.TemporaryDirectory() as tmp:
            doc = MAKERS[kind](src, Path(tmp))
        path = GOLDEN_DIR / f"{kind}.json"
        path.write_text(dump(doc) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
