"""Per-layer attribution of int8 quantization error (TFLite's QuantizationDebugger).

Run when an int8 gate fails: it re-quantizes the same export with the same
representative data in debug mode, which runs float and quantized versions of every
layer side by side, and ranks layers by RMSE / quantization scale (the ratio the
TensorFlow "inspecting quantization errors" guide uses: how many quantization steps the
error spans). The worst layers are where selective float fallback or better calibration
data helps.
"""

from __future__ import annotations

import csv
import io
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteship import nativelog


@dataclass(frozen=True)
class LayerError:
    op_name: str
    tensor_name: str
    rmse_over_scale: float
    rmse: float
    max_abs_error: float
    scale: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def attribute(
    export: Any,
    representative: Callable[[], Iterator[list[np.ndarray]]],
    top: int = 5,
) -> list[LayerError]:
    """The ``top`` layers with the largest quantization error, worst first."""
    import tensorflow as tf

    from liteship.converter.convert import make_converter

    converter = make_converter(export)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    with nativelog.captured(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the debugger still uses the deprecated tf.lite.Interpreter
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=representative)
        debugger.run()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "layers.csv"
            with open(path, "w") as f:
                debugger.layer_statistics_dump(f)
            text = path.read_text()
    return rank(text, top)


def rank(layer_statistics_csv: str, top: int = 5) -> list[LayerError]:
    """Rank the rows of ``QuantizationDebugger.layer_statistics_dump`` output."""
    rows = []
    for row in csv.DictReader(io.StringIO(layer_statistics_csv)):
        try:
            scale = float(row["scale"])
            mse = float(row["mean_squared_error"])
        except (KeyError, ValueError):
            continue
        if not np.isfinite(mse) or scale <= 0:
            continue
        rmse = float(np.sqrt(mse))
        rows.append(
            LayerError(
                op_name=row.get("op_name", ""),
                tensor_name=row.get("tensor_name", "").split(";")[0],  # fused ops list every source name
                rmse_over_scale=rmse / scale,
                rmse=rmse,
                max_abs_error=float(row.get("max_abs_error", "nan")),
                scale=scale,
            )
        )
    rows.sort(key=lambda r: r.rmse_over_scale, reverse=True)
    return rows[:top]
