"""The `qconv` command line: parse, call the library, render, map errors to exit codes."""

from qconv.cli.app import app
from qconv.cli.errors import EXIT_CODES, exit_code_for

__all__ = ["EXIT_CODES", "app", "exit_code_for"]
