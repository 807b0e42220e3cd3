"""`make bench`: wall time, throughput and peak memory of whole conversions, plus kernel speed.

Measures, on a generated Llama-shaped BF16 checkpoint (~200M parameters, dims multiples of 256):
- `qconv convert` to each type: wall seconds, input MB/s (BF16 bytes read per second), the peak
  resident memory of the whole process tree (parent + workers, sampled from /proc every 20 ms), and
  CPU seconds / wall seconds (how many cores were busy);
- the same at half the layer count, to show memory stays flat as the model grows;
- llama.cpp's two-step pipeline (convert_hf_to_gguf.py --outtype bf16, then llama-quantize) for
  the same checkpoint and type, when those tools are present in the qconv cache;
- a ~1.4 GB BF16 Qwen3-MoE with 64 experts per layer (and the same with 32 experts, to show memory
  stays flat as experts are added): qconv q8_0 against convert_hf_to_gguf.py --outtype q8_0, and
  qconv q4_k_m against the two steps (`--moe-only` runs just this part, `--skip-moe` skips it);
- the quantize kernels alone against gguf.quants (tools/bench_kernels.py).
Figures are printed as Markdown tables for docs/performance.md. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from synthetic import (  # noqa: E402
    LlamaShape,
    MoeShape,
    write_llama_checkpoint,
    write_qwen3moe_checkpoint,
)

BENCH_SHAPE = LlamaShape(
    n_layers=12, hidden=1024, intermediate=2816, n_heads=16, n_kv_heads=8, vocab=32000
)
CACHE = Path(os.environ.get("QCONV_CACHE", Path.home() / ".cache" / "qconv"))
TOKENIZER = REPO / "tests" / "golden" / "arch" / "llama3" / "tokenizer"
# 12 layers × 64 experts of 3 × 1024×256, hidden 1024, vocabulary 32000: 702M parameters, 1.40 GB.
MOE_SHAPE = MoeShape()
QWEN_TOKENIZER = REPO / "tests" / "golden" / "arch" / "qwen2" / "tokenizer"


@dataclass(frozen=True)
class Run:
    label: str
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float
    output_mb: float
    peak_pss_mb: float = 0.0


def _tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants, from each thread's /proc children list.

    Walking the tree from the root costs a few files per process; listing every process in /proc
    each sample took ~5 ms of CPU, 18 % of a core at 20 ms intervals, which the measured tools
    then lacked on a 2-core machine.
    """
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    stack.extend(int(child) for child in f.read().split())
        except OSError:  # the process ended meanwhile
            continue
    return pids


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return 0


def _tree_memory_kb(root: int, with_pss: bool = True) -> tuple[int, int]:
    """(summed RSS, summed PSS) of ``root`` and all its descendants, from /proc.

    Summed RSS counts a page shared by forked workers (Python, NumPy's libraries, the parent's
    heap before the fork) once per process; PSS splits each shared page among its sharers, so the
    PSS sum is the memory the tree really holds. Both are reported. PSS (smaps_rollup walks every
    mapping) is skipped when ``with_pss`` is False.
    """
    pids = _tree_pids(root)
    total = sum(_rss_kb(pid) for pid in pids)
    return total, sum(_pss_kb(pid) for pid in pids) if with_pss else 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(label: str, cmd: list[str], output: Path, env: dict[str, str] | None = None) -> Run:
    """Run ``cmd``, sampling the process tree's memory; return its figures."""
    if output.exists():
        output.unlink()
    peak = peak_pss = 0
    before = os.times()
    started = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    done = threading.Event()

    def sample() -> None:
        # RSS every 20 ms; PSS, ~10x dearer to read, every 100 ms (it moves with RSS, slowly).
        nonlocal peak, peak_pss
        count = 0
        while not done.is_set():
            rss, pss = _tree_memory_kb(process.pid, with_pss=count % 5 == 0)
            peak, peak_pss = max(peak, rss), max(peak_pss, pss)
            count += 1
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    after = os.times()
    if process.returncode != 0:
        raise SystemExit(f"{label} failed:\n{stderr.decode(errors='replace')}")
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    size = output.stat().st_size / 1e6 if output.exists() else 0.0
    return Run(label, seconds, peak / 1024, cpu, size, peak_pss / 1024)


def checkpoint(shape: LlamaShape | MoeShape, name: str) -> Path:
    """A cached bench checkpoint with one of the test suite's small BPE tokenizers."""
    directory = REPO / "bench-out" / name
    if not (directory / "model.safetensors").exists():
        print(f"generating {name} ({shape.n_params / 1e6:.0f}M parameters, BF16)…", file=sys.stderr)
        if isinstance(shape, MoeShape):
            write_qwen3moe_checkpoint(directory, shape, seed=1)
        else:
            write_llama_checkpoint(directory, shape, dtype="BF16", seed=1)
    tokenizer = QWEN_TOKENIZER if isinstance(shape, MoeShape) else TOKENIZER
    for file in tokenizer.iterdir():
        shutil.copy(file, directory / file.name)
    return directory


def fastest(runs: list[Run]) -> Run:
    """The run with the least wall time: on a shared machine, noise only ever adds time."""
    return min(runs, key=lambda run: run.seconds)


def qconv_run(model: Path, target: str, label: str, repeat: int) -> Run:
    out = REPO / "bench-out" / f"{model.name}-{target}.gguf"
    cmd = [sys.executable, "-m", "qconv", "convert", str(model), "-t", target, "-o", str(out)]
    return fastest([measure(label, [*cmd, "-f", "-q"], out) for _ in range(repeat)])


def _llama_cpp_tools() -> tuple[Path, Path, Path] | None:
    """(converter venv python, convert_hf_to_gguf.py, llama-quantize) if all are in the cache."""
    roots = sorted(CACHE.glob("llama-cpp-python-*/"))
    venv_python = CACHE / "convert-venv" / "bin" / "python"
    if not roots or not venv_python.exists():
        return None
    quantize = roots[-1] / "build" / "bin" / "llama-quantize"
    script = roots[-1] / "src" / "convert_hf_to_gguf.py"
    if not quantize.exists() or not script.exists():
        return None
    return venv_python, script, quantize


def llama_cpp_convert(model: Path, outtype: str, repeat: int, pre: str = "llama-bpe") -> Run | None:
    """convert_hf_to_gguf.py --outtype OUTTYPE, if it is in the cache."""
    tools = _llama_cpp_tools()
    if tools is None:
        return None
    venv_python, script, _ = tools
    out = REPO / "bench-out" / f"{model.name}-llamacpp-{outtype}.gguf"
    # The bench tokenizers are tiny trained vocabularies whose pre-tokenizer hash llama.cpp does not
    # list; the golden script's wrapper names it (``pre``) and otherwise runs the converter as is.
    from make_arch_goldens import CONVERT_WRAPPER

    cmd = [str(venv_python), "-c", CONVERT_WRAPPER, str(script.parent), pre, str(model)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_LOCAL_GGUF": "1"}
    label = f"llama.cpp convert_hf_to_gguf --outtype {outtype}"
    return fastest(
        [
            measure(label, [*cmd, "--outtype", outtype, "--outfile", str(out)], out, env=env)
            for _ in range(repeat)
        ]
    )


def llama_cpp_two_step(
    model: Path, target: str, repeat: int, pre: str = "llama-bpe"
) -> list[Run] | None:
    """convert_hf_to_gguf.py --outtype bf16 then llama-quantize, if both are in the cache."""
    tools = _llama_cpp_tools()
    step1 = llama_cpp_convert(model, "bf16", repeat, pre)
    if tools is None or step1 is None:
        return None
    quantize = tools[2]
    bf16 = REPO / "bench-out" / f"{model.name}-llamacpp-bf16.gguf"
    final = REPO / "bench-out" / f"{model.name}-llamacpp-{target}.gguf"
    step2 = fastest(
        [
            measure(
                f"llama.cpp llama-quantize {target.upper()}",
                [str(quantize), str(bf16), str(final), target.upper(), str(os.cpu_count() or 2)],
                final,
            )
            for _ in range(repeat)
        ]
    )
    return [step1, step2]


def table(runs: list[Run], input_mb: float) -> str:
    lines = [
        "| run | wall s | input MB/s | peak RSS MB | peak PSS MB | CPU s / wall s | output MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run.label} | {run.seconds:.1f} | {input_mb / run.seconds:.0f} | "
            f"{run.peak_rss_mb:.0f} | {run.peak_pss_mb:.0f} | "
            f"{run.cpu_seconds / run.seconds:.2f} | {run.output_mb:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", default="q8_0,q4_0,q4_k_m", help="comma-separated --type values")
    parser.add_argument("--repeat", type=int, default=2, help="runs per conversion; fastest kept")
    parser.add_argument("--skip-kernels", action="store_true")
    parser.add_argument("--skip-llama-cpp", action="store_true")
    parser.add_argument("--skip-moe", action="store_true", help="skip the 1.4 GB Qwen3-MoE part")
    parser.add_argument("--moe-only", action="store_true", help="run only the Qwen3-MoE part")
    args = parser.parse_args()
    targets = [t for t in args.types.split(",") if t]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"command: {' '.join(['python', 'tools/bench.py', *sys.argv[1:]])}\n")
    if args.moe_only:
        moe_bench(args.repeat, args.skip_llama_cpp)
        return

    big = checkpoint(BENCH_SHAPE, "bench-llama-200m")
    half = checkpoint(_half(BENCH_SHAPE), "bench-llama-half")
    input_mb = (big / "model.safetensors").stat().st_size / 1e6
    half_mb = (half / "model.safetensors").stat().st_size / 1e6
    print(f"checkpoint: {BENCH_SHAPE.n_params / 1e6:.0f}M parameters, {input_mb:.0f} MB BF16\n")

    print(f"each conversion run {args.repeat}× and the fastest kept\n")
    runs = [qconv_run(big, t, f"qconv {t}", args.repeat) for t in targets]
    print(table(runs, input_mb))
    half_runs = [qconv_run(half, t, f"qconv {t} (half the layers)", args.repeat) for t in targets]
    print("\nMemory as the model grows (same types, half the layers):\n")
    print(table(half_runs, half_mb))

    if not args.skip_llama_cpp:
        for target in (t for t in targets if "_k" in t):
            steps = llama_cpp_two_step(big, target, args.repeat)
            if steps is None:
                print(f"\nllama.cpp two-step for {target}: tools not built (make interop); skipped")
            else:
                print(f"\nllama.cpp two-step pipeline for {target}:\n")
                print(table(steps, input_mb))
    if not args.skip_moe:
        moe_bench(args.repeat, args.skip_llama_cpp)
    if not args.skip_kernels:
        from bench_kernels import main as kernels_main

        print("\nKernels alone (1024×4096 float32, median of 3):\n")
        kernels_main()
    shutil.rmtree(REPO / "bench-out" / "tmp", ignore_errors=True)


def moe_bench(repeat: int, skip_llama_cpp: bool) -> None:
    """Qwen3-MoE, 64 experts: qconv against llama.cpp for q8_0 (one step each) and q4_k_m."""
    from dataclasses import replace

    big = checkpoint(MOE_SHAPE, "bench-qwen3moe-64x")
    half = checkpoint(replace(MOE_SHAPE, n_experts=32), "bench-qwen3moe-32x")
    input_mb = (big / "model.safetensors").stat().st_size / 1e6
    half_mb = (half / "model.safetensors").stat().st_size / 1e6
    print(f"\nQwen3-MoE: {MOE_SHAPE.n_params / 1e6:.0f}M parameters, {input_mb:.0f} MB BF16, "
          f"{MOE_SHAPE.n_layers} layers × {MOE_SHAPE.n_experts} experts\n")  # fmt: skip
    runs = [qconv_run(big, t, f"qconv {t}", repeat) for t in ("q8_0", "q4_k_m")]
    print(table(runs, input_mb))
    half_runs = [qconv_run(half, t, f"qconv {t} (32 experts)", repeat) for t in ("q8_0", "q4_k_m")]
    print(f"\nMemory as experts are added (32 experts per layer, {half_mb:.0f} MB BF16):\n")
    print(table(half_runs, half_mb))
    if skip_llama_cpp:
        return
    q8 = llama_cpp_convert(big, "q8_0", repeat, pre="qwen2")
    steps = llama_cpp_two_step(big, "q4_k_m", repeat, pre="qwen2")
    if q8 is None or steps is None:
        print("\nllama.cpp tools not built (make interop); comparison skipped")
        return
    print("\nllama.cpp on the same checkpoint:\n")
    print(table([q8, *steps], input_mb))
    two_step = steps[0].seconds + steps[1].seconds
    two_step_rss = max(steps[0].peak_rss_mb, steps[1].peak_rss_mb)
    q8_wall, q8_rss = runs[0].seconds / q8.seconds, runs[0].peak_rss_mb / q8.peak_rss_mb
    k_wall, k_rss = runs[1].seconds / two_step, runs[1].peak_rss_mb / two_step_rss
    two_step_pss = max(steps[0].peak_pss_mb, steps[1].peak_pss_mb)
    q8_pss, k_pss = runs[0].peak_pss_mb / q8.peak_pss_mb, runs[1].peak_pss_mb / two_step_pss
    print(
        f"\nratios qconv / llama.cpp: q8_0 wall {q8_wall:.2f}×, peak RSS {q8_rss:.0%} "
        f"(PSS {q8_pss:.0%}); q4_k_m wall {k_wall:.2f}× of both steps, peak RSS {k_rss:.0%} "
        f"(PSS {k_pss:.0%})"
    )


def _half(shape: LlamaShape) -> LlamaShape:
    return LlamaShape(
        n_layers=shape.n_layers // 2,
        hidden=shape.hidden,
        intermediate=shape.intermediate,
        n_heads=shape.n_heads,
        n_kv_heads=shape.n_kv_heads,
        vocab=shape.vocab,
        tied=shape.tied,
    )


if __name__ == "__main__":
    main()
