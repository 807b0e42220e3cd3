"""`make bench` part: does the importance matrix reach the kernels? KL divergence with and without.

For each pipeline case (tools/make_pipeline_goldens.py) this converts the checkpoint with qconv to
bf16 (the reference) and to Q4_K_M and Q3_K_M, each without and with the case's imatrix
(tests/golden/pipeline_imatrix/<case>/imatrix.gguf, made by llama-imatrix over corpus.txt), then
runs llama.cpp's llama-perplexity on tools/data/imatrix_eval.txt (text the imatrix never saw):
first on the bf16 file to save its logits (--kl-divergence-base), then on each quantized file with
--kl-divergence. It prints one Markdown table row per file: mean KL divergence from bf16, its
uncertainty, perplexity and the share of tokens whose top choice is unchanged.

The models are tiny and their weights random, so the absolute numbers say little about a trained
model; what matters is the direction: with the imatrix, the divergence should drop.
Needs llama-perplexity (tools/build_ggml.sh llama-perplexity). Nothing is asserted.
Usage: .venv/bin/python tools/bench_imatrix.py [CASE ...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for extra in (HERE, REPO / "tests"):
    sys.path.insert(0, str(extra))

from make_pipeline_goldens import CASES, write_checkpoint  # noqa: E402

from qconv.pipeline import convert  # noqa: E402

EVAL_TEXT = HERE / "data" / "imatrix_eval.txt"
GOLDEN_DIR = REPO / "tests" / "golden" / "pipeline_imatrix"
DEFAULT_CASES = ("llama3_h256_bf16", "llama2_h32_ff256_4l_f32")
TYPES = ("q4_k_m", "q3_k_m")
PERPLEXITY_ARGS = ("-c", "128", "-b", "128", "-t", "2")
_FIGURES = {
    "kld": re.compile(r"Mean\s+KLD:\s+([-\d.e]+)\s+±\s+([-\d.e]+)"),
    "ppl": re.compile(r"Mean PPL\(Q\)\s*:\s+([-\d.e]+)"),
    "top": re.compile(r"Same top p:\s+([-\d.e]+)"),
}


def perplexity_tool() -> Path:
    build = subprocess.run(
        ["bash", str(HERE / "build_ggml.sh"), "llama-perplexity"],
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ).stdout.strip()
    return Path(build) / "bin" / "llama-perplexity"


def run_perplexity(tool: Path, model: Path, base: Path, kld: bool) -> str:
    args = [str(tool), "-m", str(model), "-f", str(EVAL_TEXT), *PERPLEXITY_ARGS]
    args += ["--kl-divergence-base", str(base)] + (["--kl-divergence"] if kld else [])
    run = subprocess.run(args, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"llama-perplexity failed on {model.name}:\n{run.stderr[-2000:]}")
    return run.stdout + run.stderr


def figures(output: str) -> dict[str, str]:
    found = {name: pattern.search(output) for name, pattern in _FIGURES.items()}
    return {name: (m.group(1) if m else "?") for name, m in found.items()} | {
        "kld_err": found["kld"].group(2) if found["kld"] else "?"
    }


def kld_figures(tool: Path, model: Path, base: Path) -> dict[str, str]:
    # llama.cpp logs from a background thread that exit does not always drain, so the summary is
    # sometimes cut off; the numbers are deterministic, so running again is safe.
    for _ in range(5):
        got = figures(run_perplexity(tool, model, base, kld=True))
        if "?" not in got.values():
            return got
    raise SystemExit(f"llama-perplexity printed no KLD summary for {model.name} in five runs")


def bench_case(name: str, tool: Path, tmp: Path) -> list[str]:
    case = CASES[name]
    model = write_checkpoint(case, tmp / name)
    imatrix = GOLDEN_DIR / name / "imatrix.gguf"
    reference = tmp / f"{name}-bf16.gguf"
    convert(str(model), reference, target="bf16", force=True)
    base = tmp / f"{name}.kld"
    run_perplexity(tool, reference, base, kld=False)
    rows = []
    for target in TYPES:
        for weighted in (False, True):
            out = tmp / f"{name}-{target}-{weighted}.gguf"
            extra = {"imatrix": str(imatrix)} if weighted else {}
            convert(str(model), out, target=target, force=True, **extra)
            got = kld_figures(tool, out, base)
            label = f"{target}{' + imatrix' if weighted else ''}"
            rows.append(
                f"| {name} | {label} | {got['kld']} ± {got['kld_err']} | {got['ppl']} | "
                f"{got['top']} % |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"default: {', '.join(DEFAULT_CASES)}")
    args = parser.parse_args()
    tool = perplexity_tool()
    print("| model | file | mean KLD vs bf16 | PPL | same top token |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases or DEFAULT_CASES:
            for row in bench_case(name, tool, Path(tmp)):
                print(row, flush=True)


if __name__ == "__main__":
    main()
