"""OD API SSD models with random weights, of any size: pipeline.config + a TF2 checkpoint.

A model built from the config, run once (so every variable exists), given random weights
(:func:`randomize`) and saved with ``tf.train.Checkpoint(model=...)``: the object graph
``model_main_tf2.py`` writes, minus the optimizer. Used by the tests (tiny models) and by
``liteship bench`` (a full-size SSD MobileNet v2 320x320, nothing downloaded).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from liteship.demo import synth

TEMPLATE = Path(__file__).resolve().parent / "pipeline_template.config"


def ssd_config_text(
    size: int = 96,
    num_classes: int = 3,
    depth_multiplier: float = 0.25,
    feature_extractor: str = "ssd_mobilenet_v2_keras",
    label_map: str = "label_map.pbtxt",
) -> str:
    """The demo's pipeline.config template at another size / width / class count."""
    text = TEMPLATE.read_text()
    text = text.replace("height: 160 width: 160", f"height: {size} width: {size}")
    text = text.replace("num_classes: 3", f"num_classes: {num_classes}")
    text = text.replace("depth_multiplier: 0.35", f"depth_multiplier: {depth_multiplier}")
    text = text.replace('type: "ssd_mobilenet_v2_keras"', f'type: "{feature_extractor}"')
    return text.replace("LABEL_MAP", label_map).replace("TRAIN_RECORD", "train.record")


def ssd_mobilenet_v2_320_config_text(num_classes: int = 90, label_map: str = "label_map.pbtxt") -> str:
    """The model block of the OD API model zoo's ``ssd_mobilenet_v2_320x320_coco17_tpu-8``
    (MobileNetV2 depth 1.0, 320x320, 1x1 non-depthwise box predictor, six anchor aspect
    ratios per location, scales 0.2-0.95, 90 COCO classes), written as edits of the demo
    template, which differs from it in exactly these fields."""
    text = ssd_config_text(320, num_classes, 1.0, label_map=label_map)
    edits = [
        ("kernel_size: 3", "kernel_size: 1"),
        ("use_depthwise: true", "use_depthwise: false"),
        ("min_scale: 0.15", "min_scale: 0.2"),
        ("max_scale: 0.9", "max_scale: 0.95"),
        ("aspect_ratios: 0.5", "aspect_ratios: 0.5\n        aspect_ratios: 3.0\n        aspect_ratios: 0.3333"),
    ]
    for old, new in edits:
        if old not in text:
            raise ValueError(f"the demo template changed: {old!r} not found")
        text = text.replace(old, new, 1)
    return text


def write_ssd_checkpoint(
    root: Path,
    size: int = 96,
    num_classes: int = 3,
    depth_multiplier: float = 0.25,
    seed: int = 0,
    config_text: str | None = None,
    calibrate: bool = False,
) -> tuple[Path, Path, Path]:
    """Writes root/pipeline.config, root/label_map.pbtxt, root/checkpoint/ckpt-1.* (and, when
    calibrated, root/activations.json: :func:`activation_stats` afterwards).

    ``calibrate``: also :func:`calibrate_activations` on synthetic photos (what a full-size
    model needs to behave like a trained one; the tiny test models keep plain :func:`randomize`).
    """
    import tensorflow as tf

    from liteship import odapi

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / "pipeline.config"
    config_path.write_text(config_text or ssd_config_text(size, num_classes, depth_multiplier))
    if config_text is not None:
        num_classes = int(re.search(r"num_classes:\s*(\d+)", config_text).group(1))  # type: ignore[union-attr]
        size = int(re.search(r"height:\s*(\d+)", config_text).group(1))  # type: ignore[union-attr]
    classes = tuple(synth.CLASSES) + tuple(f"class{i}" for i in range(len(synth.CLASSES) + 1, num_classes + 1))
    label_map = root / "label_map.pbtxt"
    label_map.write_text(synth.label_map_pbtxt(classes[:num_classes]))
    tf.keras.utils.set_random_seed(seed)
    configs = odapi.config_util().get_configs_from_pipeline_file(str(config_path))
    model = odapi.model_builder().build(configs["model"], is_training=False)
    image, shapes = model.preprocess(tf.zeros([1, size, size, 3]))
    model.postprocess(model.predict(image, shapes), shapes)
    randomize(model, seed)
    if calibrate:
        import json

        stats = calibrate_activations(model, calibration_images(size, seed))
        (root / "activations.json").write_text(json.dumps(stats, indent=1))
    ckpt_dir = root / "checkpoint"
    tf.train.Checkpoint(model=model).save(str(ckpt_dir / "ckpt"))
    return config_path, ckpt_dir, label_map


def randomize(model: Any, seed: int) -> None:
    """He-normal kernels, identity batch norms, small random biases (seeded).

    An untrained OD API MobileNet's activations vanish (every input gives the same heads),
    which would make any parity test vacuous. At full size this alone is not enough
    (ReLU6 saturates in the deeper blocks): see :func:`calibrate_activations`.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    for v in model.variables:
        name, shape = v.name, v.shape.as_list()
        if "moving_variance" in name or "gamma" in name:
            value = np.ones(shape)
        elif "moving_mean" in name or "beta" in name:
            value = np.zeros(shape)
        elif len(shape) == 4:  # conv kernel [kh, kw, in, out] or depthwise [kh, kw, in, mult]
            fan_in = shape[0] * shape[1] * (1 if "depthwise" in name else shape[2])
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        else:
            value = rng.normal(0.0, 0.1, shape)
        v.assign(value.astype(v.dtype.as_numpy_dtype))


# --- activations like a trained network's ---------------------------------------------

#: targets of :func:`calibrate_activations`: class logits ~ N(mean, std) (sigmoid scores
#: mostly low, a few percent above 0.5, hardly any at 0 or 1) and box encodings ~ N(0, std)
CLASS_LOGIT_MEAN, CLASS_LOGIT_STD = -2.5, 1.5
BOX_ENCODING_STD = 1.0


def calibration_images(size: int, seed: int = 0, count: int = 8) -> Any:
    """``count`` synthetic photos (the demo's generator) as a float32 [count, size, size, 3] batch."""
    import numpy as np

    images = []
    for sample in synth.generate(seed + 1000, count, "act"):
        images.append(np.asarray(sample.image.convert("RGB").resize((size, size)), np.float32))
    return np.stack(images)


def _keras_layers(model: Any) -> list[Any]:
    import tensorflow as tf

    return [m for m in model.submodules if isinstance(m, tf.keras.layers.Layer)]


def calibrate_activations(model: Any, images: Any) -> dict[str, Any]:
    """Data-dependent initialisation (the batch norms of a trained network normalise):
    every batch norm's moving mean / variance become the statistics of its input on
    ``images``, then each class / box prediction conv is rescaled so that its outputs have the target
    mean and spread. With random He-normal weights alone, ReLU6 saturates in the deeper
    blocks and ~20 % of the sigmoid scores sit at 0 or 1 (measured on the 320x320 model).
    Returns the statistics after calibration (see :func:`activation_stats`).
    """
    import numpy as np
    import tensorflow as tf

    pre, shapes = model.preprocess(tf.constant(images))
    layers = _keras_layers(model)
    # duck-typed: the OD API's FreezableBatchNorm subclasses tf_keras' BatchNormalization
    bns = [l for l in layers if hasattr(l, "moving_mean") and hasattr(l, "moving_variance")]
    def normalising(layer: Any, original: Any) -> Any:
        # the layer's moving statistics become those of the input it gets right now, so one
        # eager forward pass calibrates every batch norm in the order the data reaches them
        def call(inputs: Any, *args: Any, **kwargs: Any) -> Any:
            x = tf.reshape(tf.cast(inputs, tf.float32), [-1, inputs.shape[-1]])
            layer.moving_mean.assign(tf.reduce_mean(x, 0))
            layer.moving_variance.assign(tf.math.reduce_variance(x, 0))
            return original(inputs, *args, **kwargs)
        return call

    originals = {id(l): l.call for l in bns}
    try:
        for l in bns:
            l.call = normalising(l, l.call)
        model.predict(pre, shapes)
    finally:
        for l in bns:
            l.call = originals[id(l)]
    heads = [l for l in layers if hasattr(l, "kernel") and getattr(l, "bias", None) is not None
             and ("ClassPredictor" in l.name or "BoxEncodingPredictor" in l.name)]
    outputs: dict[int, Any] = {}

    def output_recording(layer: Any, original: Any) -> Any:
        def call(inputs: Any, *args: Any, **kwargs: Any) -> Any:
            y = original(inputs, *args, **kwargs)
            outputs[id(layer)] = y.numpy()
            return y
        return call

    originals = {id(l): l.call for l in heads}
    try:
        for l in heads:
            l.call = output_recording(l, l.call)
        model.predict(pre, shapes)
    finally:
        for l in heads:
            l.call = originals[id(l)]
    for l in heads:
        y = outputs.get(id(l))
        if y is None:
            continue
        is_class = "ClassPredictor" in l.name
        mean, std = (CLASS_LOGIT_MEAN, CLASS_LOGIT_STD) if is_class else (0.0, BOX_ENCODING_STD)
        kernel, bias = l.kernel.numpy(), l.bias.numpy()
        without_bias = (y - bias).reshape(-1)
        scale = std / max(float(without_bias.std()), 1e-6)
        l.kernel.assign((kernel * scale).astype(kernel.dtype))
        l.bias.assign(np.full_like(bias, mean - float(without_bias.mean()) * scale))
    return activation_stats(model, images)


def activation_stats(model: Any, images: Any) -> dict[str, Any]:
    """What "neither vanishing nor saturating" means, measured on ``images``: per ReLU6 of
    the backbone the fraction of outputs at 0 and at 6 (worst layer), the sigmoid class
    scores' spread (fractions below 0.01 / above 0.99 / above 0.5) and how much the heads
    vary from image to image (0 = every input gives the same heads: vanished)."""
    import numpy as np
    import tensorflow as tf

    pre, shapes = model.preprocess(tf.constant(images))
    fe = model._feature_extractor  # noqa: SLF001
    backbone = getattr(fe, "classification_backbone", None)
    relu = {"worst_zero_fraction": None, "worst_six_fraction": None, "layers": 0}
    if backbone is not None:
        acts = [l for l in backbone.layers if "relu" in l.name.lower()]
        probe = tf.keras.Model(backbone.inputs, [l.output for l in acts])
        outs = [o.numpy() for o in probe(pre)]
        relu = {"worst_zero_fraction": round(max(float(np.mean(o <= 0)) for o in outs), 4),
                "worst_six_fraction": round(max(float(np.mean(o >= 6)) for o in outs), 4), "layers": len(outs)}
    pred = model.predict(pre, shapes)
    scores = tf.sigmoid(pred["class_predictions_with_background"][..., 1:]).numpy()
    boxes = pred["box_encodings"].numpy()
    return {
        "images": int(len(images)),
        "relu6": relu,
        "scores": {"below_0.01": round(float(np.mean(scores < 0.01)), 4), "above_0.99": round(float(np.mean(scores > 0.99)), 4),
                   "above_0.5": round(float(np.mean(scores > 0.5)), 5), "median": round(float(np.median(scores)), 4),
                   "std_across_images": round(float(scores.std(axis=0).mean()), 4)},
        "box_encodings": {"std": round(float(boxes.std()), 4), "std_across_images": round(float(boxes.std(axis=0).mean()), 4)},
    }
