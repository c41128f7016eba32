"""``python -m maco_hub.cli``: the ``maco-hub`` command."""

import sys

from .commands import main

sys.exit(main())
