"""Estimate a MACO magnitude spectrum from photographs: ``maco-hub spectrum estimate`` from a checkout.

Sources (pick one):
  --dataset ID          a Hugging Face dataset, streamed (``--split``, ``--dataset-revision``,
                        ``--image-column``: default the first column of type Image)
  --folder DIR          image files under DIR, recursively
  --builtin-photos      the colour photographs shipped inside scikit-image, scikit-learn and
                        (if installed) matplotlib; augmented with crops and flips by default

Examples:
  python scripts/estimate_spectrum.py --builtin-photos --out spectra/default.safetensors
  python scripts/estimate_spectrum.py --dataset ORG/NAME --split train --count 5000 --out s.safetensors
  python scripts/estimate_spectrum.py --folder photos/ --out s.safetensors --push me/my-spectrum

All options: ``python scripts/estimate_spectrum.py --help``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from maco_hub import cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``maco-hub spectrum estimate`` with ``argv`` (default: the command line)."""
    return cli.main(["spectrum", "estimate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
