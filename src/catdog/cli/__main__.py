"""``python -m catdog.cli``: the same command as ``catdog``."""

import sys

from catdog.cli import main

sys.exit(main())
