"""``python -m graphrnn`` is the ``graphrnn`` command."""

import sys

from graphrnn.cli import main

sys.exit(main())
