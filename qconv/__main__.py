"""``python -m qconv``: the ``qconv`` command's own entry point (qconv_launcher.py)."""

from qconv_launcher import main

main()
