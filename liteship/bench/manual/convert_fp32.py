"""Manual path, step 2a: SavedModel -> fp32 .tflite (what the TFLite docs show).

    python liteship/bench/manual/convert_fp32.py --saved-model exported/saved_model --out fp32.tflite

``allow_custom_ops`` keeps ``TFLite_Detection_PostProcess`` (the exporter's composite) as
the custom op. Plain TensorFlow only: the OD API is not needed here.
"""

import argparse

import tensorflow as tf

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--saved-model", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

converter = tf.lite.TFLiteConverter.from_saved_model(args.saved_model)
converter.allow_custom_ops = True
with open(args.out, "wb") as f:
    f.write(converter.convert())
