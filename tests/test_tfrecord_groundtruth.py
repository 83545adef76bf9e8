"""OD API TFRecord ground truth: the same boxes as the VOC folder it was made from."""

from __future__ import annotations

from pathlib import Path

import pytest

from liteship.demo import synth
from liteship.errors import GroundTruthProblem
from liteship.validation.groundtruth import GroundTruth, load_ground_truth, load_voc_folder
from tests.test_metrics import _write_dataset

pytestmark = pytest.mark.tf
CLASSES = list(synth.CLASSES)


def _example(item: GroundTruth, *, with_text: bool = True, filename: str | None = None):  # noqa: ANN202
    """A tf.train.Example as the OD API's create_pascal_tf_record.py writes it."""
    import tensorflow as tf
    from object_detection.utils import dataset_util as du

    w, h = item.width, item.height
    feature = {
        "image/height": du.int64_feature(h),
        "image/width": du.int64_feature(w),
        "image/filename": du.bytes_feature((filename if filename is not None else item.filename).encode()),
        "image/source_id": du.bytes_feature(item.filename.encode()),
        "image/encoded": du.bytes_feature(item.image_path.read_bytes()),
        "image/format": du.bytes_feature(b"png"),
        "image/object/bbox/xmin": du.float_list_feature([b.xmin / w for b in item.boxes]),
        "image/object/bbox/xmax": du.float_list_feature([b.xmax / w for b in item.boxes]),
        "image/object/bbox/ymin": du.float_list_feature([b.ymin / h for b in item.boxes]),
        "image/object/bbox/ymax": du.float_list_feature([b.ymax / h for b in item.boxes]),
        "image/object/class/label": du.int64_list_feature([CLASSES.index(b.label) + 1 for b in item.boxes]),
        "image/object/difficult": du.int64_list_feature([int(b.difficult) for b in item.boxes]),
    }
    if with_text:
        feature["image/object/class/text"] = du.bytes_list_feature([b.label.encode() for b in item.boxes])
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _write(path: Path, examples: list) -> Path:  # noqa: ANN001
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for ex in examples:
            writer.write(ex.SerializeToString())
    return path


@pytest.fixture(scope="module")
def voc(tmp_path_factory: pytest.TempPathFactory) -> list[GroundTruth]:
    return load_voc_folder(_write_dataset(tmp_path_factory.mktemp("tfr") / "val"), CLASSES)


def _same_boxes(a: list[GroundTruth], b: list[GroundTruth]) -> None:
    assert [g.filename for g in a] == [g.filename for g in b]
    for ga, gb in zip(a, b):
        assert (ga.width, ga.height) == (gb.width, gb.height)
        assert [x.label for x in ga.boxes] == [x.label for x in gb.boxes]
        for x, y in zip(ga.boxes, gb.boxes):
            assert (x.xmin, x.ymin, x.xmax, x.ymax) == pytest.approx((y.xmin, y.ymin, y.xmax, y.ymax), abs=1e-3)
        assert gb.image_path.read_bytes() == ga.image_path.read_bytes()


def test_tfrecord_gives_the_boxes_of_the_voc_folder_it_was_made_from(voc: list[GroundTruth], tmp_path: Path) -> None:
    record = _write(tmp_path / "val.record", [_example(g) for g in voc])
    _same_boxes(voc, load_ground_truth(record, CLASSES))


def test_class_ids_alone_are_named_from_the_label_map(voc: list[GroundTruth], tmp_path: Path) -> None:
    record = _write(tmp_path / "ids.tfrecord", [_example(g, with_text=False) for g in voc])
    _same_boxes(voc, load_ground_truth(record, CLASSES))
    with pytest.raises(GroundTruthProblem, match="only a class id"):
        load_ground_truth(tmp_path / "ids.tfrecord", None)


def test_sharded_tfrecord_is_read_whole_from_any_shard_or_the_pattern(voc: list[GroundTruth], tmp_path: Path) -> None:
    _write(tmp_path / "val.record-00000-of-00002", [_example(g) for g in voc[:3]])
    _write(tmp_path / "val.record-00001-of-00002", [_example(g) for g in voc[3:]])
    _same_boxes(voc, load_ground_truth(tmp_path / "val.record-00001-of-00002", CLASSES))
    _same_boxes(voc, load_ground_truth(tmp_path / "val.record-?????-of-00002", CLASSES))
    (tmp_path / "val.record-00001-of-00002").unlink()
    with pytest.raises(GroundTruthProblem, match="is one missing"):
        load_ground_truth(tmp_path / "val.record-00000-of-00002", CLASSES)


def test_record_file_names_cannot_escape_the_extraction_folder(voc: list[GroundTruth], tmp_path: Path) -> None:
    record = _write(tmp_path / "evil.record",
                    [_example(voc[0], filename="../../etc/passwd"), _example(voc[1], filename="../../etc/passwd")])
    gt = load_ground_truth(record, CLASSES)
    assert [g.filename for g in gt] == ["passwd", "passwd_1.png"] or all("/" not in g.filename for g in gt)
    assert len({g.image_path for g in gt}) == 2
    for g in gt:
        assert ".." not in g.image_path.parts and g.image_path.is_file()


def test_truncated_or_wrong_tfrecords_fail_with_exit_16(voc: list[GroundTruth], tmp_path: Path) -> None:
    good = _write(tmp_path / "good.record", [_example(g) for g in voc])
    cut = tmp_path / "cut.record"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(GroundTruthProblem, match="truncated or corrupt") as info:
        load_ground_truth(cut, CLASSES)
    assert info.value.exit_code == 16

    import tensorflow as tf

    no_image = tf.train.Example()
    no_image.features.feature["image/width"].int64_list.value.append(4)
    with pytest.raises(GroundTruthProblem, match="encoded image"):
        load_ground_truth(_write(tmp_path / "noimg.record", [no_image]), CLASSES)
    with pytest.raises(GroundTruthProblem, match="no records"):
        load_ground_truth(_write(tmp_path / "empty.record", []), CLASSES)
    with pytest.raises(GroundTruthProblem, match="not in the label list"):
        load_ground_truth(good, ["circle"])
