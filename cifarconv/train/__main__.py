"""``python -m cifarconv.train``: see ``cli.py``."""

from .cli import main

main()
