"""``python -m slomo``: the ``slomo`` command."""

from .cli import main

main()
