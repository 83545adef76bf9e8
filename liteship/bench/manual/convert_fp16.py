"""Manual path, step 2b: SavedModel -> fp16 .tflite (float16 weights, float32 input).

    python liteship/bench/manual/convert_fp16.py --saved-model exported/saved_model --out fp16.tflite
"""

import argparse

import tensorflow as tf

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--saved-model", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

converter = tf.lite.TFLiteConverter.from_saved_model(args.saved_model)
converter.allow_custom_ops = True
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.target_spec.supported_types = [tf.float16]
with open(args.out, "wb") as f:
    f.write(converter.convert())
