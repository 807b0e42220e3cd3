"""Throughput of qconv's quantization kernels, next to gguf-py's where it has one.

Usage: ``.venv/bin/python tools/bench_kernels.py [--types q8_0 q4_0 ...] [--rows N] [--cols N]``
       ``.venv/bin/python tools/bench_kernels.py --ggml [--imatrix] [--types ...]``

Every figure is MB/s of float32 input (output for dequantization), the median of ``repeats`` runs on
one Gaussian ``(n_rows, n_cols)`` matrix, timed in CPU seconds of this process: the targets are per
core, and on a shared machine wall time also counts the time other processes took the core. Types
are those ``qconv.quant`` has a kernel for whose module imports, so new kernels appear on their own.

``--ggml`` compares with ggml's own C quantizer (``ggml_quantize_chunk`` in libggml-base, built
without -march flags, i.e. ggml's scalar code) in the same process, alternating qconv and ggml run
by run, median of ``repeats``: single runs on a shared machine swing too much to compare otherwise.
``--imatrix`` passes both the same importance matrix (lognormal, like llama-imatrix's Σx²/count).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from qconv import quant
from qconv.gguf.constants import GGMLType

Clock = Callable[[], float]


def available_types() -> list[GGMLType]:
    """The types qconv can quantize whose kernel module imports cleanly, in registry order.

    F32 is left out: its "quantizer" is a reinterpretation of the input, not a kernel.
    """
    found = []
    for qtype, (module_name, _) in quant.KERNEL_MODULES.items():
        if qtype == GGMLType.F32 or not quant.can_quantize(qtype):
            continue
        try:
            importlib.import_module(module_name)
        except ImportError:
            continue
        found.append(qtype)
    return found


def _gguf_quantizer(qtype: GGMLType) -> Callable[[np.ndarray], np.ndarray] | None:
    """gguf.quants.quantize for ``qtype``, or None when gguf is missing or cannot quantize it."""
    try:
        import gguf
    except ImportError:
        return None
    gtype = gguf.GGMLQuantizationType[qtype.name]

    def run(x: np.ndarray) -> np.ndarray:
        # F32/F16 come back as float arrays, the rest as bytes: compare bytes throughout.
        return np.ascontiguousarray(gguf.quants.quantize(x, gtype)).view(np.uint8)

    try:
        run(np.zeros((1, 256), dtype=np.float32))
    except NotImplementedError:
        return None
    return run


def _median_mb_s(work: Callable[[], Any], nbytes: int, repeats: int, clock: Clock) -> float:
    seconds = []
    for _ in range(repeats):
        start = clock()
        work()
        seconds.append(clock() - start)
    return nbytes / 1e6 / max(statistics.median(seconds), 1e-9)


def bench_kernels(
    types: Iterable[GGMLType] | None = None,
    n_rows: int = 1024,
    n_cols: int = 4096,
    repeats: int = 3,
    *,
    clock: Clock = time.process_time,
) -> list[dict[str, Any]]:
    """Measure each type's quantize (and gguf-py's) and dequantize on the same Gaussian matrix.

    Returns one dict per type: ``type``, ``qconv_mb_s``, ``gguf_mb_s`` (None where gguf-py cannot
    quantize the type), ``speedup``, ``same_bytes`` (qconv's output equals gguf-py's; None without
    gguf) and ``dequant_mb_s`` (float32 output per second).
    """
    x = np.random.default_rng(0).standard_normal((n_rows, n_cols)).astype(np.float32)
    chosen = available_types() if types is None else list(types)
    return [_bench_type(qtype, x, repeats, clock) for qtype in chosen]


def _bench_type(qtype: GGMLType, x: np.ndarray, repeats: int, clock: Clock) -> dict[str, Any]:
    data = quant.quantize(x, qtype)
    row: dict[str, Any] = {
        "type": qtype.name,
        "qconv_mb_s": _median_mb_s(lambda: quant.quantize(x, qtype), x.nbytes, repeats, clock),
        "gguf_mb_s": None,
        "speedup": None,
        "same_bytes": None,
        "dequant_mb_s": _median_mb_s(
            lambda: quant.dequantize(data, qtype, x.shape[1]), x.nbytes, repeats, clock
        ),
    }
    reference = _gguf_quantizer(qtype)
    if reference is not None:
        row["same_bytes"] = bool(np.array_equal(reference(x).reshape(data.shape), data))
        row["gguf_mb_s"] = _median_mb_s(lambda: reference(x), x.nbytes, repeats, clock)
        row["speedup"] = row["qconv_mb_s"] / row["gguf_mb_s"]
    return row


def bench_against_ggml(
    types: Iterable[GGMLType] | None = None,
    n_rows: int = 1024,
    n_cols: int = 4096,
    repeats: int = 5,
    *,
    with_imatrix: bool = False,
    clock: Clock = time.process_time,
) -> list[dict[str, Any]]:
    """qconv's and ggml's MB/s per type, alternating in one process; checks the bytes are equal.

    Returns one dict per type: ``type``, ``qconv_mb_s``, ``ggml_mb_s``, ``ratio``, ``same_bytes``.
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from ggml_oracle import load_ggml

    ggml = load_ggml()
    if ggml is None:
        raise SystemExit("libggml-base.so is not built: run tools/build_ggml.sh")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n_rows, n_cols)).astype(np.float32)
    imatrix = rng.lognormal(0.0, 1.5, n_cols).astype(np.float32) if with_imatrix else None
    results = []
    for qtype in available_types() if types is None else list(types):
        same = bool(
            np.array_equal(quant.quantize(x, qtype, imatrix), ggml.quantize(qtype, x, imatrix))
        )
        ours, theirs = [], []
        for _ in range(repeats):
            for times, work in (
                (ours, functools.partial(quant.quantize, x, qtype, imatrix)),
                (theirs, functools.partial(ggml.quantize, qtype, x, imatrix)),
            ):
                start = clock()
                work()
                times.append(clock() - start)
        mb = x.nbytes / 1e6
        row = {
            "type": qtype.name,
            "qconv_mb_s": mb / statistics.median(ours),
            "ggml_mb_s": mb / statistics.median(theirs),
            "same_bytes": same,
        }
        row["ratio"] = row["qconv_mb_s"] / row["ggml_mb_s"]
        results.append(row)
    return results


# (header, result key, format spec, unit suffix); cells are right-aligned under their header.
_COLUMNS = [
    ("qconv MB/s", "qconv_mb_s", ".0f", ""),
    ("gguf MB/s", "gguf_mb_s", ".0f", ""),
    ("speed-up", "speedup", ".1f", "x"),
    ("same bytes", "same_bytes", "", ""),
    ("dequant MB/s", "dequant_mb_s", ".0f", ""),
]


def _cell(value: Any, spec: str, suffix: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return format(value, spec) + suffix


_GGML_COLUMNS = [
    ("qconv MB/s", "qconv_mb_s", ".1f", ""),
    ("ggml C MB/s", "ggml_mb_s", ".1f", ""),
    ("ratio", "ratio", ".2f", "x"),
    ("same bytes", "same_bytes", "", ""),
]


def format_table(
    results: list[dict[str, Any]], columns: list[tuple[str, str, str, str]] = _COLUMNS
) -> str:
    """The results as an aligned plain-text table."""
    lines = [" ".join([f"{'type':<6}", *(f"{header:>13}" for header, *_ in columns)])]
    for row in results:
        cells = [f"{_cell(row[key], spec, suffix):>13}" for _, key, spec, suffix in columns]
        lines.append(" ".join([f"{row['type']:<6}", *cells]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", nargs="*", help="type names (default: every available kernel)")
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--cols", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wall", action="store_true", help="time wall-clock instead of CPU")
    parser.add_argument("--ggml", action="store_true", help="against ggml's C in this process")
    parser.add_argument("--imatrix", action="store_true", help="with an importance matrix (--ggml)")
    args = parser.parse_args(argv)
    types = [GGMLType[name.upper()] for name in args.types] if args.types else None
    clock = time.perf_counter if args.wall else time.process_time
    if args.ggml:
        repeats = max(args.repeats, 5)
        found = bench_against_ggml(
            types, args.rows, args.cols, repeats, with_imatrix=args.imatrix, clock=clock
        )
        weights = " with an imatrix" if args.imatrix else ""
        timing = "wall" if args.wall else "CPU"
        print(
            f"{args.rows}x{args.cols} float32 Gaussian{weights}, qconv and ggml alternating, "
            f"median of {repeats}, {timing} time"
        )
        print(format_table(found, _GGML_COLUMNS))
        return
    results = bench_kernels(types, args.rows, args.cols, args.repeats, clock=clock)
    print(
        f"{args.rows}x{args.cols} float32 Gaussian, median of {args.repeats}, "
        f"{'wall' if args.wall else 'CPU'} time"
    )
    print(format_table(results))


if __name__ == "__main__":
    main()
