"""Ground truth for validating a detector: Pascal VOC XML folders and CSV files.

Supported formats:

* a folder of Pascal VOC XML files, one per image, as labelImg writes them; each XML's
  ``<filename>`` names the image, looked up in the same folder as the XML;
* a CSV file with the header ``filename,width,height,class,xmin,ymin,xmax,ymax`` (one row
  per box, the format of the common ``xml_to_csv.py`` scripts); other columns are
  ignored, an optional ``difficult`` column is honoured, and a row with an empty
  ``class`` and empty coordinates lists an image without objects. Image paths are
  relative to the CSV's folder.

* an OD API TFRecord (``.record`` / ``.tfrecord`` / ``.tfrecords``, or a sharded
  ``name.record-00000-of-00004`` given as any shard or as ``name.record-?????-of-?????``)
  of ``tf.train.Example`` with the OD API's keys (``object_detection.core.standard_fields
  .TfExampleFields``: ``image/encoded``, ``image/filename``, normalized
  ``image/object/bbox/*``, ``image/object/class/text`` or ``.../label`` ids, ``difficult``).
  The embedded images are extracted once per process into a temporary folder (the rest of
  liteship works on image files).

Boxes are in pixels, ``(xmin, ymin, xmax, ymax)``. Every referenced image must exist; its
header is read to check the annotated size (a size of 0, which some labelImg versions
write, is replaced by the real one). EXIF orientation: labelImg and the OD API's TFRecord
tools use the image as stored (no EXIF rotation), other tools annotate the upright view;
the annotated size tells which one when the EXIF orientation swaps width and height, and
:meth:`GroundTruth.load_rgb` decodes the image in that orientation. Every problem is a
:class:`~liteship.errors.GroundTruthProblem` naming the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from liteship.errors import GroundTruthProblem
from liteship.validation.groundtruth.csv_file import load_csv
from liteship.validation.groundtruth.model import CSV_DEFAULT_NAME, GroundTruth, GroundTruthBox, is_tfrecord
from liteship.validation.groundtruth.voc import load_voc_folder, xml_files

__all__ = ["GroundTruth", "GroundTruthBox", "is_tfrecord", "load_csv", "load_ground_truth", "load_voc_folder"]


def load_ground_truth(path: Path | str, class_names: Sequence[str] | None = None) -> list[GroundTruth]:
    """Load ground truth from what ``path`` is.

    A folder with ``.xml`` files -> Pascal VOC; a ``.csv`` file -> CSV; a folder with
    ``annotations.csv`` and no ``.xml`` -> that CSV. With ``class_names``, every label must
    be one of them.
    """
    path = Path(path)
    if not path.exists() and not is_tfrecord(path):
        raise GroundTruthProblem(
            f"ground truth {path} does not exist: pass a folder of Pascal VOC XML files, a CSV file or an OD API TFRecord")
    if path.is_dir():
        if any(xml_files(path)):
            return load_voc_folder(path, class_names)
        if (path / CSV_DEFAULT_NAME).is_file():
            return load_csv(path / CSV_DEFAULT_NAME, class_names)
        raise GroundTruthProblem(
            f"ground truth folder {path} has no Pascal VOC .xml files and no {CSV_DEFAULT_NAME}",
            hint="pass the folder labelImg saved the XML files to, or a CSV file",
        )
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return load_csv(path, class_names)
    if is_tfrecord(path):
        from liteship.validation.groundtruth.tfrecord import load_tfrecord  # imports TensorFlow

        return load_tfrecord(path, class_names)
    if suffix == ".xml":
        raise GroundTruthProblem(
            f"ground truth {path} is a single XML file: pass the folder that holds the VOC XML files"
        )
    raise GroundTruthProblem(
        f"ground truth {path} is neither a folder of Pascal VOC XML files, a .csv file nor an OD API TFRecord "
        f"(.record / .tfrecord)"
    )
