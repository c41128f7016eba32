"""``python -m maco_hub`` is the ``maco-hub`` command (and ``torchrun -m maco_hub`` runs it per rank)."""

import sys

from .cli import main

sys.exit(main())
