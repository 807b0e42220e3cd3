"""Regenerate tests/golden/pipeline_imatrix/: llama.cpp's pipeline with an importance matrix.

For every case of tools/make_pipeline_goldens.py (hidden sizes that are and are not multiples of
256, BF16 and F32 sources) this script
1. writes the checkpoint and runs llama.cpp's convert_hf_to_gguf.py --outtype bf16 (f32);
2. runs llama-imatrix on that file over tests/golden/pipeline_imatrix/corpus.txt, once per output
   format (--output-format gguf and dat), and keeps both files: <case>/imatrix.gguf, imatrix.dat;
3. runs ``llama-quantize --imatrix imatrix.<fmt> <that file> <out> <FTYPE>`` from inside <case>/
   (so quantize.imatrix.file is the bare file name, as the test passes it) for every file type in
   IMATRIX_FTYPES and both formats, and ``llama-quantize`` without one for IQ4_NL and IQ4_XS;
4. stores, per run, a description of llama-quantize's output (tests/gguf_digest.py: every KV and
   tensor digest in order, and the whole file's sha256) in <case>/expected.json.
The whole outputs would be ~6 MB; the descriptions stay under 100 KB per case.
Usage: .venv/bin/python tools/make_pipeline_imatrix_goldens.py [CASE ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = ROOT / "tests" / "golden" / "pipeline_imatrix"
CORPUS = GOLDEN_DIR / "corpus.txt"
LLAMA_SRC = Path.home() / ".cache/qconv/llama-cpp-python-0.3.36/src"
for extra in (LLAMA_SRC / "gguf-py", ROOT / "tools", ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from gguf_digest import describe_gguf  # noqa: E402
from make_pipeline_goldens import CASES, build_llama_quantize, write_checkpoint  # noqa: E402

IMATRIX_FTYPES = ("q4_k_m", "q4_k_s", "q3_k_m", "q2_k", "q4_0", "q6_k", "iq4_nl", "iq4_xs", "q8_0")
PLAIN_FTYPES = ("iq4_nl", "iq4_xs")
FORMATS = ("gguf", "dat")
# A context of 128 tokens splits the corpus into ~14 chunks on the tiny tokenizers.
IMATRIX_ARGS = ("-c", "128", "-b", "128", "-t", "2", "--no-ppl")


def runs() -> list[tuple[str, str | None]]:
    """(ftype, imatrix file name or None) for every golden run, in the JSON's order."""
    weighted = [(f, f"imatrix.{fmt}") for fmt in FORMATS for f in IMATRIX_FTYPES]
    return weighted + [(f, None) for f in PLAIN_FTYPES]


def run_key(ftype: str, imatrix: str | None) -> str:
    return ftype if imatrix is None else f"{ftype}+{imatrix}"


def build_imatrix_tool() -> Path:
    return build_llama_quantize().parent / "llama-imatrix"


def make_imatrix(tool: Path, model: Path, case_dir: Path, fmt: str) -> None:
    # Run beside a copy of the corpus so the dataset recorded in the imatrix is "corpus.txt".
    args = [str(tool), "-m", str(model), "-f", "corpus.txt", "-o", f"imatrix.{fmt}"]
    args += ["--output-format", fmt, *IMATRIX_ARGS]
    run = subprocess.run(args, cwd=case_dir, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"llama-imatrix failed:\n{run.stderr[-2000:]}")


def quantize(tool: Path, src: Path, dst: Path, ftype: str, imatrix: str | None, cwd: Path) -> None:
    flags = [] if imatrix is None else ["--imatrix", imatrix]
    args = [str(tool), *flags, str(src), str(dst), ftype.upper(), "1"]
    run = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"llama-quantize {ftype} {imatrix} failed:\n{run.stderr[-2000:]}")


def to_json(expected: dict[str, dict]) -> str:
    """One line per KV and per tensor keeps the file small and its diffs readable."""
    runs_text = []
    for key, description in expected.items():
        kvs = ",\n".join(json.dumps(kv) for kv in description["kvs"])
        tensors = ",\n".join(json.dumps(t) for t in description["tensors"])
        runs_text.append(
            f'{json.dumps(key)}: {{"file_sha256": {json.dumps(description["file_sha256"])},\n'
            f'"kvs": [\n{kvs}\n],\n"tensors": [\n{tensors}\n]}}'
        )
    return "{\n" + ",\n".join(runs_text) + "\n}\n"


def make_case(name: str, quantize_tool: Path, imatrix_tool: Path, src: Path) -> None:
    import make_arch_goldens as hf

    case = CASES[name]
    case_dir = GOLDEN_DIR / name
    shutil.rmtree(case_dir, ignore_errors=True)
    case_dir.mkdir(parents=True)
    expected = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = write_checkpoint(case, Path(tmp))
        intermediate = Path(tmp) / f"{case.outtype}.gguf"
        hf.convert(case.arch_case().pre, model, case.outtype, intermediate, src)
        shutil.copy(CORPUS, case_dir / "corpus.txt")
        try:
            for fmt in FORMATS:
                make_imatrix(imatrix_tool, intermediate, case_dir, fmt)
        finally:
            (case_dir / "corpus.txt").unlink()
        out = Path(tmp) / "out.gguf"
        for ftype, imatrix in runs():
            quantize(quantize_tool, intermediate, out, ftype, imatrix, case_dir)
            expected[run_key(ftype, imatrix)] = describe_gguf(out)
    (case_dir / "expected.json").write_text(to_json(expected))
    sizes = {p.name: p.stat().st_size for p in sorted(case_dir.iterdir())}
    print(name, sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"default: all of {', '.join(CASES)}")
    args = parser.parse_args()
    import make_arch_goldens as hf

    hf.ensure_venv()
    src = hf.llama_cpp_root()
    quantize_tool = build_llama_quantize()
    subprocess.run(
        ["bash", str(ROOT / "tools" / "build_ggml.sh"), "llama-imatrix"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    for name in args.cases or list(CASES):
        make_case(name, quantize_tool, build_imatrix_tool(), src)


if __name__ == "__main__":
    main()
