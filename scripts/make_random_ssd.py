#!/usr/bin/env python
"""Write a random-init OD API SSD (pipeline.config + TF2 checkpoint + label map) of any size.

Used to measure liteship on a full-size model without downloading anything:

  .venv/bin/python scripts/make_random_ssd.py work-tmp/ssd320 --zoo-320    # what `liteship bench` builds
  .venv/bin/python scripts/make_random_ssd.py work-tmp/ssd --size 160 --depth 0.35 --classes 3
  .venv/bin/liteship run --pipeline-config work-tmp/ssd320/pipeline.config \\
      --checkpoint-dir work-tmp/ssd320/checkpoint --label-map work-tmp/ssd320/label_map.pbtxt \\
      --images liteship/demo/data/calibration --out work-tmp/ssd320-out
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import liteship  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from liteship.demo import random_ssd


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path)
    p.add_argument("--zoo-320", action="store_true",
                   help="the model zoo's ssd_mobilenet_v2_320x320 (90 classes), activations calibrated")
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--depth", type=float, default=1.0, help="MobileNetV2 depth multiplier")
    p.add_argument("--classes", type=int, default=90)
    p.add_argument("--calibrate", action="store_true", help="batch norms and heads calibrated on synthetic photos")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.zoo_320:
        paths = random_ssd.write_ssd_checkpoint(args.root, seed=args.seed, calibrate=True,
                                                config_text=random_ssd.ssd_mobilenet_v2_320_config_text(args.classes))
    else:
        paths = random_ssd.write_ssd_checkpoint(args.root, size=args.size, num_classes=args.classes,
                                                depth_multiplier=args.depth, seed=args.seed, calibrate=args.calibrate)
    print("\n".join(str(x) for x in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
