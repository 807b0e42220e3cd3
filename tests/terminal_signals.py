"""``preexec_fn`` helpers for tests that signal a real qconv process.

qconv leaves ignored any signal it was started ignoring (nohup, a script's background job), so a
test's child must not inherit what the test runner happened to be given: a CI job started in the
background ignores Ctrl-C, one under nohup ignores SIGHUP.
"""

from __future__ import annotations

import signal

_STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def as_in_a_terminal() -> None:
    """The dispositions an interactive shell gives its foreground job: every signal's default."""
    for signum in _STOPPING:
        signal.signal(signum, signal.SIG_DFL)


def ignoring(signum: int) -> None:
    """As :func:`as_in_a_terminal`, but ``signum`` ignored, as ``nohup`` starts SIGHUP."""
    as_in_a_terminal()
    signal.signal(signum, signal.SIG_IGN)
