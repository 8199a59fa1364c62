"""``python -m indexer``: see ``indexer.cli``."""

import sys

from .cli import run

sys.exit(run())
