"""The ``qconv`` command's entry point: a signal outside a command's own handling exits quietly.

Importing the CLI (NumPy, typer and the rest) takes a few tenths of a second, and typer then builds
the commands; Python's default handler would print a KeyboardInterrupt traceback from wherever
that was, and typer turns one during parsing into a silent exit 130. This module imports nothing
heavy (the package's public names load on first use), so its handler is in place from the start,
and it stays for parsing and exiting; while a command works, the CLI's own handling takes over
(qconv/cli/errors.py) and cleans up. Here nothing needs cleaning: the handler prints one line and
exits at once with 128 + signal, as the CLI does.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

from qconv.signals import heeded_signals


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    del frame
    name = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
    os.write(2, f"error: interrupted{name}\n".encode())
    os._exit(128 + signum)


def main() -> None:
    """Run the CLI with the quiet handler installed for everything but the commands' work."""
    for signum in heeded_signals():
        signal.signal(signum, _exit_quietly)
    from qconv.cli import app

    sys.exit(app())
