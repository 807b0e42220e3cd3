"""Fixtures for the interop tests: llama.cpp's runtime and ggml oracle, built by `make interop`.

These tests exist to run against the real llama.cpp build, so a missing build is a failure with
the command to fix it, not a skip. With QCONV_INTEROP_NO_SKIPS=1 (set by tools/interop.sh) any
skipped test in the session fails the run: the live ggml comparisons in tests/test_quant_*.py
skip themselves when libggml-base.so is absent, and under `make interop` that must not pass
silently.
"""

from __future__ import annotations

import os
import sys

import pytest
from llama_runtime import Runtime, find_build_dir

BUILD_HINT = "llama.cpp is not built: run `make interop` (tools/interop.sh builds it once)"


@pytest.fixture(scope="session")
def runtime() -> Runtime:
    lib_dir = find_build_dir()
    if lib_dir is None or not (lib_dir / "libllama.so").is_file():
        pytest.fail(BUILD_HINT)
    return Runtime(lib_dir)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("QCONV_INTEROP_NO_SKIPS") != "1" or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        reasons = sorted({str(report.longrepr[-1]) for report in skipped})
        sys.stderr.write(f"interop: {len(skipped)} tests skipped, none may be: {reasons}\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
