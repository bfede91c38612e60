"""``python -m cifarconv.explain``: see `cifarconv.explain.cli`."""

import sys

from .cli import main

sys.exit(main())
