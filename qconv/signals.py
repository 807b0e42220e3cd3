"""The signals that stop a run, and which of them this process heeds.

Ctrl-C, SIGTERM and SIGHUP stop a conversion cleanly (qconv/cli/errors.py, qconv/workers.py).
``nohup`` starts a command with SIGHUP ignored, and a non-interactive shell starts its background
jobs with Ctrl-C ignored: such a run must go on through the signal, as Python itself leaves an
ignored Ctrl-C ignored. qconv never sets SIG_IGN for them before it is done with a run, so one
ignored here is one the process was started with.
"""

from __future__ import annotations

import signal

# SIGHUP does not exist on Windows.
STOPPING = (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else []))


def heeded_signals() -> list[int]:
    """Of :data:`STOPPING`, those this process was not started ignoring."""
    return [s for s in STOPPING if signal.getsignal(s) is not signal.SIG_IGN]
