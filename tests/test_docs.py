"""Documentation that is generated from code stays in step with it."""

from __future__ import annotations

from pathlib import Path

from gen_cli_docs import DOC, render


def test_cli_reference_matches_the_help_text() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/cli.md is stale: run `python tools/gen_cli_docs.py`"
    )


def test_readme_documents_every_convert_flag() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    for flag in ("--type", "--pure", "--output", "--revision", "--arch", "--tokenizer-pre",
                 "--no-vocab", "--metadata", "--metadata-file", "--strict", "--dry-run",
                 "--force", "--jobs", "--quiet", "--json"):  # fmt: skip
        assert flag in readme, flag
