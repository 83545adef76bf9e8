"""app_run.run_models splits the images among threads: the results must not depend on how many."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.tf, pytest.mark.slow]

VAL = Path(__file__).resolve().parents[1] / "liteship" / "demo" / "data" / "val"


def test_threads_over_the_images_give_what_one_thread_gives(run_a: Path) -> None:
    from liteship.validation import app_run
    from liteship.validation.groundtruth import load_ground_truth

    names = (run_a / "labelmap.txt").read_text().splitlines()
    images = app_run.images_from_ground_truth(load_ground_truth(VAL, names)[:7])
    models = {n: (run_a / "models" / f"{n}.tflite").read_bytes() for n in ("fp32", "int8")}
    reference = run_a / "export" / "reference"
    one, kept_one = app_run.run_models(models, reference, images, keep_images=3, workers=1)
    three, kept_three = app_run.run_models(models, reference, images, keep_images=3, workers=3)
    assert set(one) == set(three) == {"fp32", "int8", app_run.REFERENCE}
    for name in one:
        a, b = one[name], three[name]
        assert a.to_dict() == b.to_dict()
        assert list(a.detections) == list(b.detections) == [i.filename for i in images]  # image order kept
        for filename, d in a.detections.items():
            e = b.detections[filename]
            assert np.array_equal(d.classes, e.classes)
            np.testing.assert_allclose(d.boxes, e.boxes, atol=1e-4)
            np.testing.assert_allclose(d.scores, e.scores, atol=1e-5)
    assert [i.filename for i, _ in kept_one] == [i.filename for i, _ in kept_three] == [i.filename for i in images[:3]]
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(kept_one, kept_three))
