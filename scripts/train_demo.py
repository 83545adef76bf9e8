#!/usr/bin/env python
"""Make the embedded demo: synthetic data, OD API training, packaged checkpoint.

Reproducible: every random choice comes from --seed. Steps (each can be rerun alone):

  data   generate the synthetic shapes dataset (train TFRecord, validation images with
         Pascal VOC XML + CSV ground truth, calibration images, label map)
  train  train with the OD API's own training loop (object_detection.model_lib_v2.train_loop,
         what model_main_tf2.py runs), from scratch, on CPU
  pack   copy the model-only checkpoint, pipeline.config, label map, validation and
         calibration images into liteship/demo/ (what the package ships)

Usage (needs the `train` extra: `.venv/bin/uv sync --extra train`):

  .venv/bin/python scripts/train_demo.py all --work work-tmp/demo --steps 3000 --batch 16

On a 2-core CPU machine training takes 40-60 minutes; CI never retrains.

--arch picks the model (default mobilenetv2, the `liteship run` demo):

  mobilenetv2  ssd_mobilenet_v2_keras, liteship/demo/pipeline_template.config, packed into
               liteship/demo/model + liteship/demo/data
  fpnlite      ssd_mobilenet_v2_fpn_keras (FPNLite), liteship/demo/fpnlite/pipeline_template.config,
               packed into liteship/demo/fpnlite/model (`liteship run --demo fpnlite`). Same
               data (same generator and seed): it shares liteship/demo/data, and pack refuses
               a work dir whose validation set differs from the packed one.

The train step resumes from the latest checkpoint in WORK/train (written every
--checkpoint-every steps) when one is there; rerun the same command to continue.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from liteship import odapi  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TF loads)
from liteship.demo import synth  # noqa: E402

DEMO_DIR = REPO / "liteship" / "demo"
# arch -> (pipeline template, where pack puts the model, whether pack also writes DEMO_DIR/data)
ARCHS = {
    "mobilenetv2": (DEMO_DIR / "pipeline_template.config", DEMO_DIR / "model", True),
    "fpnlite": (DEMO_DIR / "fpnlite" / "pipeline_template.config", DEMO_DIR / "fpnlite" / "model", False),
}
TEMPLATE = ARCHS["mobilenetv2"][0]


def _example(sample: synth.SynthSample):  # -> tf.train.Example
    import tensorflow as tf

    du = odapi.module("utils.dataset_util")
    buf = io.BytesIO()
    sample.image.save(buf, format="JPEG", quality=92)
    w, h = sample.image.size
    objs = sample.objects
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "image/height": du.int64_feature(h),
                "image/width": du.int64_feature(w),
                "image/filename": du.bytes_feature(sample.name.encode()),
                "image/source_id": du.bytes_feature(sample.name.encode()),
                "image/encoded": du.bytes_feature(buf.getvalue()),
                "image/format": du.bytes_feature(b"jpeg"),
                "image/object/bbox/xmin": du.float_list_feature([o.xmin / w for o in objs]),
                "image/object/bbox/xmax": du.float_list_feature([o.xmax / w for o in objs]),
                "image/object/bbox/ymin": du.float_list_feature([o.ymin / h for o in objs]),
                "image/object/bbox/ymax": du.float_list_feature([o.ymax / h for o in objs]),
                "image/object/class/text": du.bytes_list_feature([o.label.encode() for o in objs]),
                "image/object/class/label": du.int64_list_feature([o.class_id for o in objs]),
            }
        )
    )


def make_data(work: Path, seed: int, n_train: int, n_val: int, n_calib: int) -> None:
    import tensorflow as tf

    work.mkdir(parents=True, exist_ok=True)
    (work / "label_map.pbtxt").write_text(synth.label_map_pbtxt())
    with tf.io.TFRecordWriter(str(work / "train.record")) as writer:
        for sample in synth.generate(seed, n_train, "train"):
            writer.write(_example(sample).SerializeToString())
    val = work / "val"
    shutil.rmtree(val, ignore_errors=True)
    val.mkdir()
    rows = []
    for sample in synth.generate(seed + 1, n_val, "val"):
        fname = f"{sample.name}.jpg"
        sample.image.save(val / fname, quality=90)
        (val / f"{sample.name}.xml").write_text(synth.voc_xml(sample, fname))
        w, h = sample.image.size
        rows += [[fname, w, h, o.label, round(o.xmin), round(o.ymin), round(o.xmax), round(o.ymax)] for o in sample.objects]
    with open(val / "annotations.csv", "w", newline="") as f:
        csv.writer(f).writerows([["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"], *rows])
    calib = work / "calibration"
    shutil.rmtree(calib, ignore_errors=True)
    calib.mkdir()
    for sample in synth.generate(seed + 2, n_calib, "calib"):
        sample.image.save(calib / f"{sample.name}.jpg", quality=90)
    print(f"data: {n_train} train, {n_val} val, {n_calib} calibration images in {work}")


def write_config(work: Path, steps: int, batch: int, lr: float = 0.004, template: Path = TEMPLATE) -> Path:
    text = template.read_text()
    text = text.replace("LABEL_MAP", str(work / "label_map.pbtxt")).replace("TRAIN_RECORD", str(work / "train.record"))
    text = text.replace("total_steps: 4000", f"total_steps: {steps}").replace("num_steps: 4000", f"num_steps: {steps}")
    text = text.replace("batch_size: 32", f"batch_size: {batch}")
    text = text.replace("learning_rate_base: 0.004", f"learning_rate_base: {lr}")
    text = text.replace("warmup_steps: 200", f"warmup_steps: {min(200, steps // 4)}")
    path = work / "pipeline.config"
    path.write_text(text)
    return path


def train(work: Path, steps: int, batch: int, lr: float, template: Path = TEMPLATE, checkpoint_every: int = 500) -> None:
    import tensorflow as tf

    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)  # the loop logs step time and losses at INFO
    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.INFO)  # "Step N per-step time" lines
    config = write_config(work, steps, batch, lr, template)
    model_lib_v2 = odapi.module("model_lib_v2")
    strategy = tf.distribute.get_strategy()  # default (single device) strategy
    t0 = time.time()
    with strategy.scope():
        model_lib_v2.train_loop(
            pipeline_config_path=str(config),
            model_dir=str(work / "train"),
            train_steps=steps,
            checkpoint_every_n=checkpoint_every,
            checkpoint_max_to_keep=3,
            record_summaries=False,
            num_steps_per_iteration=50,
        )
    print(f"train: {steps} steps in {time.time() - t0:.0f} s")


def _same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def pack(work: Path, out: Path | None = None, with_data: bool = True) -> None:
    """Re-save model weights only (no optimizer slots) and copy the demo assets."""
    import tensorflow as tf

    cu = odapi.config_util()
    mb = odapi.model_builder()
    configs = cu.get_configs_from_pipeline_file(str(work / "pipeline.config"))
    model = mb.build(configs["model"], is_training=False)
    ckpt = tf.train.Checkpoint(model=model)
    latest = tf.train.latest_checkpoint(str(work / "train"))
    if latest is None:
        raise SystemExit(f"no checkpoint in {work / 'train'}; run the train step first")
    resizer = configs["model"].ssd.image_resizer.fixed_shape_resizer
    image, shapes = model.preprocess(tf.zeros([1, resizer.height, resizer.width, 3]))
    model.postprocess(model.predict(image, shapes), shapes)
    ckpt.restore(latest).assert_existing_objects_matched().expect_partial()

    data = DEMO_DIR / "data"
    if not with_data:  # the model shares the packed validation/calibration images: they must be these
        for sub in ("val", "calibration"):
            if not _same_files(work / sub, data / sub):
                raise SystemExit(f"{work / sub} differs from {data / sub}: make the data with the demo's seed and sizes")
    out = out or DEMO_DIR / "model"
    shutil.rmtree(out, ignore_errors=True)
    (out / "checkpoint").mkdir(parents=True)
    tf.train.Checkpoint(model=model).save(str(out / "checkpoint" / "ckpt"))
    # pipeline.config with relative, harmless input paths (users never train from it)
    text = (work / "pipeline.config").read_text()
    text = text.replace(str(work / "label_map.pbtxt"), "label_map.pbtxt").replace(str(work / "train.record"), "train.record")
    (out / "pipeline.config").write_text(text)
    shutil.copy(work / "label_map.pbtxt", out / "label_map.pbtxt")
    if with_data:
        shutil.rmtree(data, ignore_errors=True)
        shutil.copytree(work / "val", data / "val")
        shutil.copytree(work / "calibration", data / "calibration")
    print(f"pack: {latest} -> {out}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=["data", "train", "pack", "all"])
    p.add_argument("--arch", choices=sorted(ARCHS), default="mobilenetv2")
    p.add_argument("--work", type=Path, help="work folder (default: work-tmp/demo, work-tmp/fpnlite for --arch fpnlite)")
    p.add_argument("--seed", type=int, default=20261121)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.003, help="peak learning rate (Adam, cosine decay)")
    p.add_argument("--train-images", type=int, default=4000)
    p.add_argument("--val-images", type=int, default=50)
    p.add_argument("--calibration-images", type=int, default=64)
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (resume point)")
    args = p.parse_args(argv)
    template, packed, with_data = ARCHS[args.arch]
    work = (args.work or REPO / "work-tmp" / ("demo" if args.arch == "mobilenetv2" else args.arch)).resolve()
    if args.step in ("data", "all"):
        make_data(work, args.seed, args.train_images, args.val_images, args.calibration_images)
    if args.step in ("train", "all"):
        train(work, args.steps, args.batch, args.lr, template, args.checkpoint_every)
    if args.step in ("pack", "all"):
        pack(work, packed, with_data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
