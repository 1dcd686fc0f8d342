"""``python -m l2l.cli``: the ``l2l`` command (the grid runner and the demo's second process start it so)."""

import sys

from . import main

sys.exit(main())
