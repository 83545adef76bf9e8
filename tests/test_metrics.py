"""Ground-truth loaders, COCO mAP and the TFLite detector (fast: no TensorFlow)."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from liteship.converter.reorder import reorder_outputs
from liteship.demo import synth
from liteship.errors import GroundTruthProblem, ModelInputProblem
from liteship.tflite_inspect import inspect_model
from liteship.types import POSTPROCESS_PORT_ORDER, OutputOrder
from liteship.validation.detect import Detections, TFLiteDetector
from liteship.validation.groundtruth import (
    GroundTruth,
    load_csv,
    load_ground_truth,
    load_voc_folder,
)
from liteship.validation.metrics import coco_map
from tests.fixtures.tiny_ssd import SyntheticSpec, build_synthetic_postprocess_tflite, image_model, repack

CLASSES = list(synth.CLASSES)


# --- fixtures ------------------------------------------------------------------------


def _write_dataset(root: Path, seed: int = 3, count: int = 6) -> Path:
    """``count`` seeded images with one VOC XML each and an annotations.csv (same boxes)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for sample in synth.generate(seed, count, "val"):
        filename = f"{sample.name}.png"
        sample.image.save(root / filename)
        (root / f"{sample.name}.xml").write_text(synth.voc_xml(sample, filename))
        w, h = sample.image.size
        for o in sample.objects:
            rows.append([filename, w, h, o.label, round(o.xmin), round(o.ymin), round(o.xmax), round(o.ymax)])
    with (root / "annotations.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"])
        writer.writerows(rows)
    return root


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    return _write_dataset(tmp_path / "val")


@pytest.fixture()
def gt(dataset: Path) -> list[GroundTruth]:
    return load_voc_folder(dataset, CLASSES)


def _detections(
    gt: list[GroundTruth], *, dx: Any = 0.0, class_shift: int = 0, score: float = 1.0
) -> dict[str, Detections]:
    """Detections equal to the ground truth, each box moved right by ``dx(k) * its width``."""
    result = {}
    k = 0
    for item in gt:
        boxes, classes = [], []
        for box in item.boxes:
            shift = (dx(k) if callable(dx) else dx) * (box.xmax - box.xmin)
            boxes.append([box.xmin + shift, box.ymin, box.xmax + shift, box.ymax])
            classes.append((CLASSES.index(box.label) + class_shift) % len(CLASSES))
            k += 1
        result[item.filename] = Detections(boxes, classes, [score] * len(boxes))
    return result


# --- ground truth --------------------------------------------------------------------


def test_voc_and_csv_give_the_same_ground_truth(dataset: Path) -> None:
    voc = load_voc_folder(dataset, CLASSES)
    from_csv = load_csv(dataset / "annotations.csv", CLASSES)
    assert len(voc) == 6 and sum(g.num_boxes for g in voc) >= 6
    assert voc == from_csv
    assert [g.image_path for g in voc] == [dataset / g.filename for g in voc]
    first = voc[0]
    assert (first.width, first.height) == synth.make_sample(np.random.default_rng(3), "x").image.size
    json.dumps([g.to_dict() for g in voc])


def test_load_ground_truth_picks_the_format(dataset: Path, tmp_path: Path) -> None:
    assert load_ground_truth(dataset) == load_voc_folder(dataset)
    assert load_ground_truth(dataset / "annotations.csv") == load_csv(dataset / "annotations.csv")
    for xml in dataset.glob("*.xml"):
        xml.unlink()
    assert [g.source for g in load_ground_truth(dataset)] == [dataset / "annotations.csv"] * 6
    record = tmp_path / "val.record"
    record.write_bytes(b"\0" * 16)
    with pytest.raises(GroundTruthProblem, match="TFRecord") as info:
        load_ground_truth(record)
    assert info.value.exit_code == 16 and info.value.kind == "ground_truth"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GroundTruthProblem, match="no Pascal VOC"):
        load_ground_truth(empty)


def test_voc_difficult_flag_and_zero_size_are_read(dataset: Path) -> None:
    xml = sorted(dataset.glob("*.xml"))[0]
    text = xml.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1)
    xml.write_text(text.replace("<width>", "<width>0<!--", 1).replace("</width>", "--></width>", 1))
    first = load_voc_folder(dataset)[0]
    assert first.boxes[0].difficult and not any(b.difficult for b in first.boxes[1:])
    assert first.width == first.load_rgb().shape[1]


@pytest.mark.parametrize(("annotated", "transposed"), [((60, 40), False), ((40, 60), True)])
def test_exif_rotated_images_load_in_the_annotated_orientation(
    tmp_path: Path, annotated: tuple[int, int], transposed: bool
) -> None:
    from PIL import Image

    image = Image.new("RGB", (60, 40), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to view upright
    image.save(tmp_path / "phone.jpg", exif=exif)
    w, h = annotated
    (tmp_path / "annotations.csv").write_text(
        f"filename,width,height,class,xmin,ymin,xmax,ymax\nphone.jpg,{w},{h},circle,1,1,{w - 1},{h - 1}\n"
    )
    (item,) = load_ground_truth(tmp_path, CLASSES)
    assert item.exif_transpose is transposed
    assert item.load_rgb().shape == (h, w, 3)
    (tmp_path / "annotations.csv").write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\nphone.jpg,50,50,circle,1,1,9,9\n"
    )
    with pytest.raises(GroundTruthProblem, match="does not match image"):
        load_ground_truth(tmp_path, CLASSES)


def _break_xml(dataset: Path) -> Path:
    xml = sorted(dataset.glob("*.xml"))[2]
    xml.write_text(xml.read_text()[:-20])
    return xml


def _drop_csv_column(dataset: Path) -> Path:
    path = dataset / "annotations.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(",".join(line.split(",")[:-1]) for line in lines) + "\n")
    return path


def _empty_box_xml(dataset: Path) -> Path:
    xml = sorted(dataset.glob("*.xml"))[1]
    text = xml.read_text()
    start = text.index("<xmin>") + len("<xmin>")
    end = text.index("</xmin>")
    xmax = text[text.index("<xmax>") + len("<xmax>") : text.index("</xmax>")]
    xml.write_text(text[:start] + xmax + text[end:])
    return xml


def _empty_box_csv(dataset: Path) -> Path:
    path = dataset / "annotations.csv"
    rows = list(csv.reader(path.open()))
    rows[3][4] = rows[3][6]  # xmin = xmax
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _outside_box_csv(dataset: Path) -> Path:
    path = dataset / "annotations.csv"
    rows = list(csv.reader(path.open()))
    rows[1][6] = str(int(rows[1][1]) + 5)  # xmax past the right edge
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _unknown_class_xml(dataset: Path) -> Path:
    xml = sorted(dataset.glob("*.xml"))[4]
    text = xml.read_text()
    for label in CLASSES:
        text = text.replace(f"<name>{label}</name>", "<name>hexagon</name>", 1)
    xml.write_text(text)
    return xml


def _unknown_class_csv(dataset: Path) -> Path:
    path = dataset / "annotations.csv"
    text = path.read_text()
    first_label = next(label for label in CLASSES if f",{label}," in text)
    path.write_text(text.replace(f",{first_label},", ",hexagon,", 1))
    return path


def _missing_image(dataset: Path) -> Path:
    (dataset / "val_00003.png").unlink()
    return dataset / "val_00003.xml"


def _missing_image_csv(dataset: Path) -> Path:
    (dataset / "val_00003.png").unlink()
    return dataset / "annotations.csv"


@pytest.mark.parametrize(
    ("damage", "loader", "expected"),
    [
        (_break_xml, "voc", "malformed XML"),
        (_drop_csv_column, "csv", "missing column ymax"),
        (_empty_box_xml, "voc", "xmin < xmax"),
        (_empty_box_csv, "csv", "xmin < xmax"),
        (_outside_box_csv, "csv", "outside the"),
        (_unknown_class_xml, "voc", "'hexagon' is not in the label list"),
        (_unknown_class_csv, "csv", "'hexagon' is not in the label list"),
        (_missing_image, "voc", "image 'val_00003.png' not found"),
        (_missing_image_csv, "csv", "image 'val_00003.png' not found"),
    ],
)
def test_malformed_ground_truth_is_refused_naming_the_file(dataset: Path, damage: Any, loader: str, expected: str) -> None:
    bad_file = damage(dataset)
    with pytest.raises(GroundTruthProblem) as info:
        if loader == "voc":
            load_voc_folder(dataset, CLASSES)
        else:
            load_csv(dataset / "annotations.csv", CLASSES)
    assert str(bad_file) in info.value.message
    assert expected in info.value.message


def test_unknown_class_is_caught_by_coco_map_without_a_label_list(dataset: Path) -> None:
    bad = _unknown_class_xml(dataset)
    gt = load_voc_folder(dataset)  # no label list: loads
    with pytest.raises(GroundTruthProblem, match="hexagon") as info:
        coco_map(gt, {}, CLASSES)
    assert str(bad) in info.value.message


# --- mAP -----------------------------------------------------------------------------


def test_perfect_detections_score_one(gt: list[GroundTruth]) -> None:
    result = coco_map(gt, _detections(gt), CLASSES)
    assert result.map50 == pytest.approx(1.0)
    assert result.map == pytest.approx(1.0)
    assert result.map75 == pytest.approx(1.0)
    assert list(result.per_class_ap50) == CLASSES
    present = {box.label for g in gt for box in g.boxes}
    assert all(result.per_class_ap50[c] == pytest.approx(1.0) for c in present)
    assert result.num_images == 6
    assert result.num_gt_boxes == sum(g.num_boxes for g in gt) == result.num_detections
    assert json.loads(json.dumps(result.to_dict()))["map50"] == pytest.approx(1.0)


def test_half_width_shift_misses_at_iou_05(gt: list[GroundTruth]) -> None:
    # IoU of a box and itself moved by half its width is 0.5 / 1.5 = 1/3 < 0.5: all misses.
    result = coco_map(gt, _detections(gt, dx=0.5), CLASSES)
    assert result.map50 == 0.0 and result.map == 0.0


def test_shifted_detections_score_lower(gt: list[GroundTruth]) -> None:
    # Alternate boxes: half a width off (IoU 1/3, a miss everywhere) and a quarter off
    # (IoU 0.6: a hit at IoU 0.5..0.6, a miss above).
    result = coco_map(gt, _detections(gt, dx=lambda k: 0.5 if k % 2 else 0.25), CLASSES)
    perfect = coco_map(gt, _detections(gt), CLASSES)
    assert result.map50 is not None and result.map is not None
    assert 0.0 < result.map50 < perfect.map50
    assert result.map < result.map50


def test_wrong_class_everywhere_scores_zero(gt: list[GroundTruth]) -> None:
    result = coco_map(gt, _detections(gt, class_shift=1), CLASSES)
    assert result.map == 0.0 and result.map50 == 0.0
    assert all(v == 0.0 for c, v in result.per_class_ap50.items() if result.per_class_gt_boxes[c])


def test_no_detections_scores_zero(gt: list[GroundTruth]) -> None:
    for detections in ({}, {g.filename: Detections.empty() for g in gt}):
        result = coco_map(gt, detections, CLASSES)
        assert (result.map, result.map50, result.map75) == (0.0, 0.0, 0.0)
        assert result.num_detections == 0 and result.notes


def test_class_without_ground_truth_is_undefined_not_zero(gt: list[GroundTruth]) -> None:
    result = coco_map(gt, _detections(gt), [*CLASSES, "hexagon"])
    assert result.per_class_ap50["hexagon"] is None
    assert result.map == pytest.approx(1.0)


def test_images_without_ground_truth(gt: list[GroundTruth], tmp_path: Path) -> None:
    first = gt[0]
    empty = GroundTruth("empty.png", tmp_path / "empty.png", first.width, first.height, (), first.source)
    everything = [*gt, empty]
    assert coco_map(everything, _detections(gt), CLASSES).map50 == pytest.approx(1.0)
    # a confident false positive on the image without objects costs precision
    detections = _detections(gt, score=0.9)
    detections["empty.png"] = Detections([[10, 10, 60, 60]], [0], [1.0])
    assert coco_map(everything, detections, CLASSES).per_class_ap50["circle"] < 1.0
    only_empty = coco_map([empty], {"empty.png": Detections.empty()}, CLASSES)
    assert only_empty.map is None and only_empty.num_gt_boxes == 0
    assert coco_map([], {}, CLASSES).map is None


def test_difficult_boxes_are_ignored(dataset: Path) -> None:
    xml = sorted(dataset.glob("*.xml"))[0]
    xml.write_text(xml.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1))
    gt = load_voc_folder(dataset, CLASSES)
    detections = _detections(gt)
    first = detections[gt[0].filename]
    without_difficult = Detections(first.boxes[1:], first.classes[1:], first.scores[1:])
    for dets in (detections, {**detections, gt[0].filename: without_difficult}):
        result = coco_map(gt, dets, CLASSES)
        assert result.map == pytest.approx(1.0)
        assert result.num_difficult == 1
        assert result.num_gt_boxes == sum(g.num_boxes for g in gt) - 1


def test_bad_detections_are_refused(gt: list[GroundTruth]) -> None:
    with pytest.raises(ValueError, match="not in the ground truth"):
        coco_map(gt, {"nope.png": Detections.empty()}, CLASSES)
    with pytest.raises(ValueError, match="class indices"):
        coco_map(gt, {gt[0].filename: Detections([[0, 0, 5, 5]], [3], [0.9])}, CLASSES)
    with pytest.raises(ValueError, match="differ in length"):
        Detections([[0, 0, 5, 5]], [0, 1], [0.9])


# --- detector ------------------------------------------------------------------------

#: 4x4x3 image = 48 values = box encodings (6 anchors x 4) + class scores (6 x (3 + 1))
IMAGE_SIZE = 4
SPEC = SyntheticSpec(num_classes=3, num_anchors=6, max_detections=5)


def _image_model(dtype: str = "float32") -> bytes:
    """tiny_ssd.image_model in the TF2 converter's output order, N = 5."""
    return image_model(dtype, ports=SPEC.output_ports, max_detections=SPEC.max_detections)


def _photo(width: int = 57, height: int = 41, seed: int = 5) -> np.ndarray:
    """4x4 blocks of black/white channels (still high-contrast after resizing to 4x4)."""
    rng = np.random.default_rng(seed)
    blocks = rng.choice(np.array([0, 255], np.uint8), size=(IMAGE_SIZE, IMAGE_SIZE, 3))
    rows = np.arange(height) * IMAGE_SIZE // height
    cols = np.arange(width) * IMAGE_SIZE // width
    return np.ascontiguousarray(blocks[rows][:, cols])


@pytest.fixture(scope="module")
def float_model() -> bytes:
    return _image_model("float32")


def _check_detections(found: Detections, width: int, height: int) -> None:
    n = len(found)
    assert 0 < n <= SPEC.max_detections
    assert found.boxes.shape == (n, 4) and found.classes.shape == (n,) and found.scores.shape == (n,)
    assert found.boxes.dtype == np.float32 and found.classes.dtype == np.int64
    x0, y0, x1, y1 = found.boxes.T
    assert np.all((0 <= x0) & (x0 <= x1) & (x1 <= width))
    assert np.all((0 <= y0) & (y0 <= y1) & (y1 <= height))
    assert np.all((found.classes >= 0) & (found.classes < SPEC.num_classes))
    assert np.all(np.diff(found.scores) <= 0)
    json.dumps(found.to_dict())


def test_detector_finds_outputs_in_either_order(float_model: bytes) -> None:
    port = reorder_outputs(float_model, OutputOrder.PORT)
    assert inspect_model(port).output_roles == POSTPROCESS_PORT_ORDER
    assert inspect_model(float_model).output_roles != POSTPROCESS_PORT_ORDER
    image = _photo()
    a = TFLiteDetector(float_model, num_threads=1).detect(image)
    b = TFLiteDetector(port, num_threads=1).detect(image)
    _check_detections(a, width=57, height=41)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.classes, b.classes)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_detector_preprocesses_and_scales_boxes(float_model: bytes, tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    path = tmp_path / "model.tflite"
    path.write_bytes(float_model)
    detector = TFLiteDetector(path, num_threads=1, mean=[100.0, 120.0, 140.0], std=50.0)
    image = _photo(IMAGE_SIZE, IMAGE_SIZE)  # model-sized: Pillow's resize is then the identity
    found = detector.detect(image)

    expected_input = ((image.astype(np.float32) - np.array([100.0, 120.0, 140.0], np.float32)) / 50.0)[None]
    np.testing.assert_allclose(detector.preprocess(image), expected_input, rtol=1e-6)
    interpreter = Interpreter(model_content=float_model, num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], expected_input)
    interpreter.invoke()
    by_name = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
    boxes = by_name["TFLite_Detection_PostProcess"][0]
    count = int(by_name["TFLite_Detection_PostProcess:3"][0])
    assert len(found) == count > 0
    expected_boxes = np.clip(boxes[:count][:, [1, 0, 3, 2]] * IMAGE_SIZE, 0, IMAGE_SIZE)
    np.testing.assert_allclose(found.boxes, expected_boxes, rtol=1e-6)
    np.testing.assert_array_equal(found.classes, by_name["TFLite_Detection_PostProcess:1"][0][:count])
    np.testing.assert_array_equal(found.scores, by_name["TFLite_Detection_PostProcess:2"][0][:count])


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_quantized_inputs_match_float(float_model: bytes, dtype: str) -> None:
    image = _photo(30, 20, seed=11)
    reference = TFLiteDetector(float_model, num_threads=1).detect(image)
    detector = TFLiteDetector(_image_model(dtype), num_threads=1)
    assert detector.input_dtype == dtype
    assert detector.preprocess(image).dtype == np.dtype(dtype)
    found = detector.detect(image)
    _check_detections(found, width=30, height=20)
    assert len(found) == len(reference)
    np.testing.assert_array_equal(found.classes, reference.classes)
    np.testing.assert_allclose(found.scores, reference.scores, atol=0.02)
    np.testing.assert_allclose(found.boxes, reference.boxes, atol=1.0)


def test_detector_refuses_models_without_an_image_input(float_model: bytes) -> None:
    with pytest.raises(ModelInputProblem, match="expected 1 image input"):
        TFLiteDetector(build_synthetic_postprocess_tflite(SPEC))
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        TFLiteDetector(float_model).detect(np.zeros((8, 8), np.uint8))
