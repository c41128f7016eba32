"""``python -m maco_hub`` is the ``maco-hub`` command (``torchrun -m maco_hub`` runs it once per rank)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
