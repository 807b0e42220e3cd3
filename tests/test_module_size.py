"""The house rule the layout relies on: small modules with one owner each."""

from __future__ import annotations

from pathlib import Path

import qconv

MAX_LINES = 400


def test_every_qconv_module_is_at_most_400_lines() -> None:
    package = Path(qconv.__file__).parent
    too_long = {
        str(path.relative_to(package)): n
        for path in sorted(package.rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not too_long, f"split these modules (lines): {too_long}"
