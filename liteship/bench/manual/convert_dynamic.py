"""Manual path, step 2c: SavedModel -> dynamic-range .tflite (int8 weights, float activations).

    python liteship/bench/manual/convert_dynamic.py --saved-model exported/saved_model --out dynamic.tflite
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
with open(args.out, "wb") as f:
    f.write(converter.convert())
