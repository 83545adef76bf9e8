"""int8 per-layer error attribution: ranking (fast) and a real debugger run (tf)."""

from __future__ import annotations

from pathlib import Path

import pytest

from liteship.validation import attribution

CSV = """op_name,tensor_idx,num_elements,stddev,mean_error,max_abs_error,mean_squared_error,scale,zero_point,tensor_name
CONV_2D,10,100,0.1,0.0,0.02,0.0004,0.01,0,a/conv;a/bn
CONV_2D,11,100,0.1,0.0,0.05,0.0025,0.01,0,b/conv
DEPTHWISE_CONV_2D,12,100,0.1,0.0,0.01,0.0001,0.02,0,c/dw
LOGISTIC,13,100,0.1,0.0,0.01,nan,0.01,0,d/sig
"""


def test_layers_are_ranked_by_rmse_over_scale_worst_first() -> None:
    ranked = attribution.rank(CSV, top=3)
    assert [r.tensor_name for r in ranked] == ["b/conv", "a/conv", "c/dw"]
    assert ranked[0].rmse_over_scale == pytest.approx(5.0)  # sqrt(0.0025) / 0.01
    assert ranked[2].rmse_over_scale == pytest.approx(0.5)


def test_rows_without_a_finite_error_are_left_out() -> None:
    assert "d/sig" not in [r.tensor_name for r in attribution.rank(CSV, top=10)]


@pytest.mark.tf
def test_debugger_names_real_layers_of_the_tiny_model(run_a: Path, calib_images: Path) -> None:
    from liteship.converter import calibration
    from liteship.converter.export import inspect_saved_model

    exported = inspect_saved_model(run_a / "export" / "saved_model")
    paths, _ = calibration.find_images(calib_images)
    _, h, w, _ = exported.input_shape
    ds = calibration.Calibration(paths, calibration.resize_normalize(h, w, exported.normalization), 4,
                                             exported.normalization.range())
    layers = attribution.attribute(exported, ds, top=3)
    assert len(layers) == 3
    assert layers[0].rmse_over_scale >= layers[1].rmse_over_scale >= layers[2].rmse_over_scale
    assert all(layer.op_name and layer.tensor_name for layer in layers)
