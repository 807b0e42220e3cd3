"""Where an error becomes an exit code: EXIT_CODES, one stderr line per error, and signals.

The library raises only qconv.errors classes; this module maps them along the exception's MRO to
the exit codes the README lists, prints ``error: <message>`` (``QCONV_DEBUG=1`` adds the
traceback), and turns SIGTERM / SIGHUP / repeated Ctrl-C into one clean exit (128 + signal).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import typer

from qconv.errors import (
    FormatError,
    OutputError,
    QconvError,
    QuantizationError,
    SourceError,
    UsageError,
    printable,
)
from qconv.signals import heeded_signals

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
def _ctrl_c_raises() -> Iterator[None]:
    """Within a command, Ctrl-C raises KeyboardInterrupt where the program is (Python's default),
    for reported_errors and handled_signals to clean up and report. Outside (loading, parsing the
    flags, exiting) the ``qconv`` launcher's handler stays, which exits at once without a
    traceback (qconv/launcher.py); a handler the command installed on purpose is left alone."""
    if threading.current_thread() is not threading.main_thread() or (
        signal.SIGINT not in heeded_signals()
    ):
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is not None and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Turn library errors into one stderr line and an exit code; QCONV_DEBUG=1 adds a traceback.

    Messages are escaped: they can quote tensor names and keys from a hostile checkpoint.
    """
    try:
        with _ctrl_c_raises():
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

    A signal the process was started ignoring stays ignored (see qconv/signals.py).

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

    previous = {signum: signal.signal(signum, on_signal) for signum in heeded_signals()}
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
