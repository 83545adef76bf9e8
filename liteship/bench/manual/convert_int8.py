"""Manual path, step 2d: SavedModel -> full-integer .tflite (uint8 input, float32 outputs).

    python liteship/bench/manual/convert_int8.py --saved-model exported/saved_model --out int8.tflite \
        --images calibration/ --size 160x160 [--mean 127.5 --std 127.5] [--num-images 100]

The representative dataset is what tutorials write: every image opened with Pillow, turned
to RGB, resized (bilinear, no aspect ratio kept) to the model input and normalized
``(x - mean) / std`` -- (x - 127.5) / 127.5 for MobileNet feature extractors.
"""

import argparse
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--saved-model", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--images", required=True, help="folder of calibration photos")
parser.add_argument("--size", default="160x160", help="model input HEIGHTxWIDTH")
parser.add_argument("--mean", type=float, default=127.5)
parser.add_argument("--std", type=float, default=127.5)
parser.add_argument("--num-images", type=int, default=100)
args = parser.parse_args()
height, width = (int(v) for v in args.size.split("x"))
paths = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
paths = paths[: args.num_images]


def representative_dataset():
    for path in paths:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(rgb, dtype=np.float32)
        yield [((pixels - args.mean) / args.std)[np.newaxis]]


converter = tf.lite.TFLiteConverter.from_saved_model(args.saved_model)
converter.allow_custom_ops = True
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative_dataset
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = tf.uint8
converter.inference_output_type = tf.float32  # the postprocess op's outputs stay float
with open(args.out, "wb") as f:
    f.write(converter.convert())
