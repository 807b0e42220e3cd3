"""``python -m qconv``: the ``qconv`` command's own entry point (qconv/launcher.py)."""

from qconv.launcher import main

main()
