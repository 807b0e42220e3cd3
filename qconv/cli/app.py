"""The ``qconv`` command: parse options, call the library, render results, map errors to exit codes.

stdout carries only results (the plan, the info report, the written path, or the GGUF bytes with
``-o -``); progress, warnings and errors go to stderr. This is the only module that prints, exits,
or imports typer and tqdm.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from qconv import __version__
from qconv.errors import (
    FormatError,
    OutputError,
    QconvError,
    QuantizationError,
    SourceError,
    UsageError,
    printable,
)

# Exit codes, looked up along the exception's MRO so subclasses inherit their parent's code.
EXIT_CODES: dict[type[QconvError], int] = {
    QconvError: 1,
    UsageError: 2,
    SourceError: 3,
    FormatError: 4,
    QuantizationError: 5,
    OutputError: 6,
}
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="qconv",
    help="Convert Hugging Face checkpoints to quantized GGUF files, and inspect GGUF files.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def exit_code_for(error: QconvError) -> int:
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is so that cleanup runs as for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Turn library errors into one stderr line and an exit code; QCONV_DEBUG=1 adds a traceback.

    Messages are escaped: they can quote tensor names and keys from a hostile checkpoint.
    """
    try:
        yield
    except QconvError as e:
        if os.environ.get("QCONV_DEBUG"):
            traceback.print_exc()
        _fail(printable(str(e)), exit_code_for(e))
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Terminated) else signal.SIGINT
        name = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
        _fail(f"interrupted{name}; no output file was written", 128 + signum)


@contextlib.contextmanager
def handled_signals() -> Iterator[Callable[[], None]]:
    """Ctrl-C, SIGTERM and SIGHUP interrupt the main thread once; repeats are ignored.

    The first signal raises where the program is, so the workers are stopped and the temporary
    file removed; a second Ctrl-C during that cleanup must neither hang it nor print a traceback.
    A signal that lands where Python swallows exceptions (an at-fork hook, a finalizer) is raised
    again by the ``check`` this yields (the CLI calls it after every chunk), and an error it
    caused meanwhile (a worker killed by the same group-wide signal) is reported as the signal.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    received: list[int] = []

    def interruption() -> KeyboardInterrupt:
        return KeyboardInterrupt() if received[0] == signal.SIGINT else Terminated(received[0])

    def on_signal(signum: int, frame: object) -> None:
        if not received:
            received.append(signum)
            raise interruption()

    def check() -> None:
        if received:
            raise interruption()

    default_hook = sys.unraisablehook

    def unraisable(args: Any) -> None:
        if not (received and isinstance(args.exc_value, KeyboardInterrupt)):
            default_hook(args)

    wanted = [signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)]
    previous = {signum: signal.signal(signum, on_signal) for signum in wanted if signum is not None}
    sys.unraisablehook = unraisable
    try:
        yield check
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        if received:
            raise interruption() from e
        raise
    finally:
        sys.unraisablehook = default_hook
        if received:  # stay deaf to more signals while the error is printed and the process exits
            for signum in previous:
                signal.signal(signum, signal.SIG_IGN)
        else:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"qconv {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """qconv: Hugging Face checkpoints to GGUF in one streaming step."""


CONVERT_EXAMPLES = """
Examples:

  qconv convert ./SmolLM2-135M --type q4_0

  qconv convert ./SmolLM2-135M -t q4_k_m --imatrix imatrix.gguf

  qconv convert HuggingFaceTB/SmolLM2-135M -t q8_0 -o smol.gguf

  qconv convert model.safetensors -t f16 --dry-run

  qconv convert ./model -t q8_0 -o - | ssh host 'cat > model.gguf'

  qconv convert model-BF16.gguf -t q4_k_m

  qconv convert ./big-model -t q8_0 --split-max-size 50G
"""


@app.command(epilog=CONVERT_EXAMPLES)
def convert(
    model: Annotated[
        str,
        typer.Argument(
            help="A .safetensors file, a model folder, a Hub repo id (org/name), or a GGUF file "
            "(any part of a split set) to requantize."
        ),
    ],
    target: Annotated[
        str,
        typer.Option(
            "--type",
            "-t",
            help="Output type: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1, or llama-quantize's mixtures "
            "q2_k q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m q6_k iq4_nl iq4_xs.",
        ),
    ] = "q8_0",
    pure: Annotated[
        bool,
        typer.Option(
            "--pure",
            help="Give every quantizable tensor the type itself (no mixture rules); "
            "allows q3_k, q4_k, q5_k.",
        ),
    ] = False,
    imatrix: Annotated[
        str | None,
        typer.Option(
            "--imatrix",
            metavar="FILE",
            help="Importance matrix written by llama-imatrix (GGUF or legacy .dat): weigh each "
            "tensor's quantization by it, as llama-quantize --imatrix does.",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Output file; '-' streams to stdout. Default: <model>-<TYPE>.gguf.",
        ),
    ] = None,
    revision: Annotated[
        str | None, typer.Option(help="Hub revision (branch, tag or commit) for a repo id.")
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option(
            help="Force the architecture (llama, qwen2, qwen3, …), or 'generic' to keep HF names."
        ),
    ] = None,
    tokenizer_pre: Annotated[
        str | None,
        typer.Option(help="llama.cpp pre-tokenizer name when qconv cannot recognise it."),
    ] = None,
    no_vocab: Annotated[
        bool,
        typer.Option(
            "--no-vocab", help="Write weights only, no tokenizer (llama.cpp cannot run it)."
        ),
    ] = False,
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            "--metadata", "-m", help="Set a metadata key: KEY=VALUE or KEY:TYPE=VALUE (repeatable)."
        ),
    ] = None,
    metadata_file: Annotated[
        Path | None, typer.Option(help="JSON object of metadata keys to set.")
    ] = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Fail instead of falling back to another type for a tensor."),
    ] = False,
    allow_requantize: Annotated[
        bool,
        typer.Option(
            "--allow-requantize",
            help="GGUF input: re-encode already-quantized tensors (quality suffers).",
        ),
    ] = False,
    split_max_size: Annotated[
        str | None,
        typer.Option(
            metavar="SIZE",
            help="Split the output into parts of at most SIZE bytes (e.g. 50G, 500M; K/M/G are "
            "powers of 1000), named NAME-00001-of-0000N.gguf.",
        ),
    ] = None,
    split_max_tensors: Annotated[
        int | None,
        typer.Option(min=1, help="Split the output into parts of at most N tensors."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the per-tensor plan and total size; write nothing."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite an existing output.")
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs", "-j", min=1, help="Worker processes (default: all cores; at most 4 × cores)."
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")
    ] = False,
) -> None:
    """Convert a Hugging Face checkpoint, or requantize a GGUF file, to a GGUF file or split set."""
    from qconv.gguf.split import parse_split_size
    from qconv.options import ConvertOptions
    from qconv.pipeline import default_output_name, plan_conversion, write_conversion

    with reported_errors(), handled_signals() as check_signals:
        if output == "-" and (split_max_size is not None or split_max_tensors is not None):
            raise UsageError("-o - writes one stream; a split set needs -o FILE (or no -o)")
        options = ConvertOptions(
            target=target,
            pure=pure,
            revision=revision,
            arch=arch,
            tokenizer_pre=tokenizer_pre,
            no_vocab=no_vocab,
            metadata=tuple(metadata or ()),
            metadata_file=metadata_file,
            strict=strict,
            force=force,
            jobs=jobs,
            imatrix=imatrix,
            allow_requantize=allow_requantize,
            split_max_size=0 if split_max_size is None else parse_split_size(split_max_size),
            split_max_tensors=split_max_tensors or 0,
        )
        conversion = plan_conversion(model, options)
        if not quiet:
            for warning in conversion.warnings:
                typer.echo(f"warning: {printable(warning)}", err=True)
        if dry_run:
            typer.echo(render_plan(conversion))
            if options.split_max_size or options.split_max_tensors:
                typer.echo(
                    render_split(conversion, options.split_max_size, options.split_max_tensors)
                )
            return
        to_stdout = output == "-"
        if to_stdout and sys.stdout.isatty():
            raise UsageError("-o - would write binary GGUF data to a terminal; redirect stdout")
        destination = (
            sys.stdout.buffer
            if to_stdout
            else Path(output or default_output_name(conversion.source, conversion.target))
        )
        with _progress(conversion.data_bytes, quiet) as advance:

            def on_progress(nbytes: int) -> None:
                advance(nbytes)
                check_signals()

            report = write_conversion(conversion, destination, options, on_progress=on_progress)
        if not quiet:
            size_mb = report.bytes_written / 1e6
            parts = f" and {len(report.parts) - 1} more parts" if len(report.parts) > 1 else ""
            typer.echo(
                f"wrote {report.output}{parts}: {len(conversion.plans)} tensors, "
                f"{size_mb:.1f} MB in {report.seconds:.1f} s",
                err=True,
            )
        if not to_stdout:
            typer.echo("\n".join(report.parts))


@contextlib.contextmanager
def _progress(total: int, quiet: bool) -> Iterator[Callable[[int], None]]:
    from tqdm import tqdm  # type: ignore[import-untyped]

    disable = quiet or not sys.stderr.isatty()
    with tqdm(
        total=total, unit="B", unit_scale=True, desc="converting", disable=disable, file=sys.stderr
    ) as bar:

        def advance(nbytes: int) -> None:
            bar.update(nbytes)

        yield advance


def render_plan(conversion: object) -> str:
    """The --dry-run table: tensor, shape, source dtype → type, bytes, reason; then the totals."""
    from qconv.pipeline import Conversion

    assert isinstance(conversion, Conversion)
    rows = [("tensor", "shape", "source", "type", "bytes", "reason")]
    for plan in conversion.plans:
        shape = "×".join(str(d) for d in plan.file_shape)
        # A stacked expert tensor reads one source tensor per expert: show how many.
        n_sources = getattr(plan.data, "n_sources", 1)
        source = f"{plan.data.dtype} ×{n_sources}" if n_sources > 1 else plan.data.dtype
        name = printable(plan.name)  # names come from the checkpoint's header
        rows.append((name, shape, source, plan.qtype.name, f"{plan.nbytes:,}", plan.reason))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True))
        + "  "
        + row[5]
        for row in rows
    ]
    n_params = sum(int(_product(p.shape)) for p in conversion.plans)
    total = conversion.data_bytes
    bpw = 8 * total / n_params if n_params else 0.0
    lines.append(
        f"total: {len(conversion.plans)} tensors, {n_params:,} parameters, "
        f"{total:,} bytes of tensor data ({bpw:.2f} bits/weight), "
        f"file type {conversion.target.ftype.name}"
    )
    return "\n".join(lines)


def render_split(conversion: object, max_size: int, max_tensors: int) -> str:
    """The --dry-run line for a split: how many parts, and tensors and bytes in each."""
    from qconv.gguf.split import assign_parts
    from qconv.pipeline import Conversion

    assert isinstance(conversion, Conversion)
    sizes = [plan.nbytes for plan in conversion.plans]
    part_of = assign_parts(sizes, max_tensors=max_tensors, max_size=max_size)
    n_parts = max(part_of, default=0) + 1
    counts = [part_of.count(i) for i in range(n_parts)]
    totals = [sum(n for n, k in zip(sizes, part_of, strict=True) if k == i) for i in range(n_parts)]
    each = ", ".join(f"{c} tensors/{t:,} bytes" for c, t in zip(counts, totals, strict=True))
    return f"split: {n_parts} part{'s' if n_parts > 1 else ''} ({each})"


def _product(shape: tuple[int, ...]) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n


INFO_EXAMPLES = """
Examples:

  qconv info model.gguf

  qconv info model.gguf --json | jq '.types'
"""


@app.command(epilog=INFO_EXAMPLES)
def info(
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="A GGUF file (v2 or v3), or any part of a split set."),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Show a GGUF file's metadata, tensors, type mix and size; for a split part, its set's too."""
    from qconv.gguf.info import describe, render_text, to_json
    from qconv.gguf.reader import read_gguf
    from qconv.gguf.split import read_split_set

    with reported_errors():
        gguf = read_gguf(file)
        summary = describe(gguf, read_split_set(gguf, allow_alone=True))
        if as_json:
            typer.echo(json.dumps(to_json(summary), indent=2, ensure_ascii=False))
        else:
            typer.echo(render_text(summary))
