"""Documentation that is generated from code stays in step with it."""

from __future__ import annotations

from pathlib import Path

from gen_docs import (
    ARCH_DOC,
    CLI_DOC,
    FORMAT_DOC,
    render_architectures,
    render_cli,
    render_format,
)


def test_cli_reference_matches_the_help_text() -> None:
    assert CLI_DOC.read_text(encoding="utf-8") == render_cli(), (
        "docs/cli.md is stale: run `make docs`"
    )


def test_format_reference_matches_the_module_docstrings() -> None:
    assert FORMAT_DOC.read_text(encoding="utf-8") == render_format(), (
        "docs/format.md is stale: run `make docs`"
    )


def test_architecture_list_matches_the_family_specs() -> None:
    assert ARCH_DOC.read_text(encoding="utf-8") == render_architectures(), (
        "docs/architectures.md is stale: run `make docs`"
    )


def test_readme_documents_every_convert_flag() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    for flag in ("--type", "--pure", "--output", "--revision", "--arch", "--tokenizer-pre",
                 "--no-vocab", "--metadata", "--metadata-file", "--strict", "--dry-run",
                 "--force", "--jobs", "--quiet", "--json"):  # fmt: skip
        assert flag in readme, flag
