#!/usr/bin/env python
"""COCO mAP of TFLite detectors on a ground-truth set (Pascal VOC folder or CSV).

  .venv/bin/python scripts/eval_map.py liteship-out/models/*.tflite \
      --ground-truth liteship/demo/data/val --labels liteship-out/labelmap.txt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from liteship.validation.evaluate import evaluate_map  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--ground-truth", type=Path, required=True)
    p.add_argument("--labels", type=Path, required=True, help="labelmap.txt (one class per line)")
    args = p.parse_args(argv)
    names = [line.strip() for line in args.labels.read_text().splitlines()]
    results = {}
    for model in args.models:
        r = evaluate_map(model, args.ground_truth, names)
        results[model.name] = {"map50": r.map50, "map": r.map, "per_class_ap50": r.per_class_ap50}
        print(f"{model.name:<16} mAP@0.5 {r.map50:.4f}   mAP@[.5:.95] {r.map:.4f}", file=sys.stderr)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
