#!/usr/bin/env python
"""Write a random-init OD API SSD (pipeline.config + TF2 checkpoint + label map) of any size.

Used to measure liteship on a full-size model without downloading anything:

  .venv/bin/python scripts/make_random_ssd.py work-tmp/ssd320 --size 320 --depth 1.0 --classes 90
  .venv/bin/liteship run --pipeline-config work-tmp/ssd320/pipeline.config \\
      --checkpoint-dir work-tmp/ssd320/checkpoint --label-map work-tmp/ssd320/label_map.pbtxt \\
      --images liteship/demo/data/calibration --out work-tmp/ssd320-out
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import liteship  # noqa: E402,F401
from tests.fixtures.odapi_models import write_ssd_checkpoint  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path)
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--depth", type=float, default=1.0, help="MobileNetV2 depth multiplier")
    p.add_argument("--classes", type=int, default=90)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    paths = write_ssd_checkpoint(args.root, size=args.size, num_classes=args.classes, depth_multiplier=args.depth, seed=args.seed)
    print("\n".join(str(x) for x in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
