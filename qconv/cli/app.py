"""The ``qconv`` command: each flag declared once, parsed into the library's calls.

stdout carries only results (the plan, the info report, the written path, or the GGUF bytes with
``-o -``); progress, warnings and errors go to stderr. Only qconv/cli/ prints, exits, or imports
typer and tqdm: app.py declares the commands and their flags, errors.py maps errors and signals to
exit codes, render.py draws what a command prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from qconv import __version__
from qconv.cli.errors import handled_signals, reported_errors
from qconv.cli.render import progress, render_plan, render_split
from qconv.errors import (
    UsageError,
    printable,
)

app = typer.Typer(
    name="qconv",
    help="Convert Hugging Face checkpoints to quantized GGUF files, and inspect GGUF files.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
        Path | None,
        typer.Option(
            help="JSON object of metadata keys to set; also reads llama.cpp's --metadata files."
        ),
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
            "--jobs",
            "-j",
            min=1,
            help="Processes that quantize: this one and N-1 workers (default: all cores; at most "
            "4 × cores).",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")
    ] = False,
) -> None:
    """Convert a Hugging Face checkpoint, or requantize a GGUF file, to a GGUF file or split set."""
    from qconv.conversion import default_output_name, plan_conversion
    from qconv.gguf.split import parse_split_size
    from qconv.options import ConvertOptions
    from qconv.pipeline import write_conversion

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
        with progress(conversion.data_bytes, quiet) as advance:

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
