"""Manual path, step 3: TFLite metadata with tflite-support's ObjectDetector writer.

    python liteship/bench/manual/add_metadata.py --labels labelmap.txt --out-dir shipped/ fp32.tflite fp16.tflite ...

What the tflite-support docs show (``object_detector.MetadataWriter.create_for_inference``
then ``populate``), one process for every model. Two things the docs do not say are needed
on TF 2.21 / protobuf 7, and both come from liteship (this is the only liteship code the
script uses):

* tflite-support 0.4.4's ``*_pb2`` modules are protoc-3 gencode: ``protocompat.install``
  rebuilds them in memory (else ``Descriptors cannot be created directly``);
* its ``_pywrap_metadata_version`` links ``libusb-1.0.so.0``: ``tflsupport`` preloads it.

The writer is imported from ``tensorflow_lite_support.metadata...`` directly:
``tflite_support.metadata_writers`` also imports the Task Library, whose pybind types
clash with TensorFlow's when both are loaded.
"""

import argparse
from pathlib import Path

from liteship import protocompat, tflsupport

tflsupport.preload_libusb()
protocompat.install(["tensorflow_lite_support"])
from tensorflow_lite_support.metadata.python.metadata_writers import object_detector, writer_utils  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--labels", required=True, help="labelmap.txt: one name per line, no background")
parser.add_argument("--out-dir", required=True)
parser.add_argument("--mean", type=float, default=127.5)
parser.add_argument("--std", type=float, default=127.5)
parser.add_argument("models", nargs="+")
args = parser.parse_args()
out_dir = Path(args.out_dir)
out_dir.mkdir(parents=True, exist_ok=True)
for model in args.models:
    writer = object_detector.MetadataWriter.create_for_inference(
        writer_utils.load_file(model), [args.mean], [args.std], [args.labels]
    )
    writer_utils.save_file(writer.populate(), str(out_dir / Path(model).name))
