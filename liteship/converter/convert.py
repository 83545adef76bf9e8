"""Convert ONE export into the TFLite variants (fp32, fp16, dynamic range, full int8).

Converter settings per variant (verified on TF 2.21, all keep exactly one
CUSTOM:TFLite_Detection_PostProcess and no Flex ops):

=========  ==========================================================================
fp32       defaults + allow_custom_ops
fp16       optimizations=[DEFAULT], target_spec.supported_types=[float16]
dynamic    optimizations=[DEFAULT]
int8       optimizations=[DEFAULT], representative dataset preprocessed like the
           model, supported_ops=[TFLITE_BUILTINS_INT8], inference_input_type uint8
           (or int8); outputs of the custom op stay float32
=========  ==========================================================================
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from liteship import nativelog
from liteship.converter.export import ExportResult
from liteship.errors import ConversionProblem
from liteship.types import Int8Input, InputKind, Variant

RepresentativeDataset = Callable[[], Iterator[list[np.ndarray]]]


@dataclass(frozen=True)
class Converted:
    variant: Variant
    model: bytes
    seconds: float


def _make_converter(export: ExportResult) -> Any:
    import tensorflow as tf

    if export.kind is InputKind.FROZEN_GRAPH:
        fg = export.frozen_graph
        assert fg is not None
        converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
            str(export.source),
            input_arrays=[fg.input_name],
            output_arrays=list(fg.output_names),
            input_shapes={fg.input_name: list(export.input_shape)},
        )
    else:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(export.source))
    converter.allow_custom_ops = True
    return converter


def convert_variant(
    export: ExportResult,
    variant: Variant,
    representative: RepresentativeDataset | None = None,
    int8_input: Int8Input = Int8Input.UINT8,
) -> Converted:
    """One TFLite flatbuffer for ``variant`` (bytes; the caller writes files)."""
    import tensorflow as tf

    t0 = time.perf_counter()
    converter = _make_converter(export)
    if variant is Variant.FP16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant is Variant.DYNAMIC:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant is Variant.INT8:
        if representative is None:
            raise ConversionProblem("int8 needs a representative dataset")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8 if int8_input is Int8Input.UINT8 else tf.int8
        # The postprocess op's outputs (boxes, classes, scores, count) stay float32.
        converter.inference_output_type = tf.float32
    with nativelog.captured() as log:
        try:
            model = converter.convert()
        except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError...
            failure: Exception | None = exc
        else:
            failure = None
    if failure is not None:
        text = str(failure).strip().splitlines() + log.text.strip().splitlines()
        detail = next((line for line in text if "error" in line.lower()), text[0] if text else type(failure).__name__)
        raise ConversionProblem(f"TFLite conversion to {variant.value} failed: {detail.strip()[:400]}") from failure
    return Converted(variant=variant, model=bytes(model), seconds=time.perf_counter() - t0)
