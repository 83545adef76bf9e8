"""Malformed inputs, one table: each case builds its input, runs ``liteship.cli.main`` in
process and checks the documented exit code, ONE error message that names the problem
and the fix, no traceback, and no output that looks complete.

Only cases not already covered elsewhere are here (tests/test_cli.py, test_preflight.py,
test_labels.py, test_calibration.py, test_tflite_inspect.py, test_lint.py cover the
rest: faster_rcnn, keep_aspect_ratio_resizer, syntax error, unknown field, num_classes
too small, id 0, duplicate ids, missing/empty/truncated/foreign checkpoint, --out is a
file, unwritable --out, unknown variant, truncated/empty/text .tflite for lint...).
Each case takes the cheapest path to its error: most fail in pre-flight or argument
parsing; a tiny SavedModel (tests/fixtures/bad_tiny_saved_model.py, 32x32, 3 classes) is
the input where the error comes after export (labels vs the model, calibration images), and
only the cases that must succeed convert a model (about a second each).
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from liteship.cli import main
from tests.fixtures.reports import assert_only_reports
from tests.fixtures.bad_tiny_saved_model import shared_tiny_saved_model
from tests.fixtures.odapi_models import ssd_config_text
from tests.fixtures.tiny_ssd import build_synthetic_postprocess_tflite, line_anchors

LABELS3 = "item { id: 1 name: 'circle' }\nitem { id: 2 name: 'square' }\nitem { id: 3 name: 'triangle' }\n"


class Ctx:
    """What a case builder gets: a private folder, the output path, the expensive inputs lazily."""

    def __init__(self, tmp: Path, request: pytest.FixtureRequest) -> None:
        self.tmp = tmp
        self.out = tmp / "out"
        self.request_from_args = request

    def saved_model(self) -> Path:
        """A TFLite-exportable SavedModel with 3 classes that converts in about a second."""
        return shared_tiny_saved_model(self.request_from_args.getfixturevalue("tmp_path_factory").getbasetemp())

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def input_a(self, command: str = "run", config: str | bytes | None = None, labels: str | bytes = LABELS3,
                checkpoint: bool = True) -> list[str]:
        """Input (a) with a checkpoint that resolves (empty files: pre-flight never restores it)."""
        self.write("pipeline.config", ssd_config_text() if config is None else config)
        self.write("label_map.pbtxt", labels)
        ckpt = self.tmp / "ckpt"
        ckpt.mkdir()
        if checkpoint:
            self.write("ckpt/ckpt-1.index", b"")
            self.write("ckpt/ckpt-1.data-00000-of-00001", b"")
        return [command, "--pipeline-config", str(self.tmp / "pipeline.config"), "--checkpoint-dir", str(ckpt),
                "--label-map", str(self.tmp / "label_map.pbtxt"), "--out", str(self.out), "--quiet"]

    def convert_b(self, *extra: str) -> list[str]:
        return ["convert", "--saved-model", str(self.saved_model()), "--out", str(self.out), "--quiet", *extra]

    def images(self, files: dict[str, bytes]) -> Path:
        folder = self.tmp / "images"
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        return folder

    def int8_with(self, files: dict[str, bytes]) -> list[str]:
        """int8 only: calibration is the first thing after the (cheap) SavedModel inspection."""
        return self.convert_b("--variants", "int8", "--images", str(self.images(files)), "--calibration-images", "4")


# --- image and model bytes ---------------------------------------------------------------


def _encode(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _photo(mode: str = "RGB", size: tuple[int, int] = (40, 30)) -> Image.Image:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    return rgb.convert(mode)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, bit_depth: int, colour: int, rows: bytes | None) -> bytes:
    """A PNG written by hand: 16-bit RGB (Pillow cannot write it) or a header-only bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    idat = zlib.compress(rows if rows is not None else b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def png_rgb16(width: int = 24, height: int = 16) -> bytes:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 65536, (height, width, 3), dtype=np.uint16).astype(">u2")
    rows = b"".join(b"\0" + pixels[y].tobytes() for y in range(height))
    return _png(width, height, 16, 2, rows)


def png_gray16() -> bytes:
    values = np.linspace(0, 65535, 20 * 10).reshape(10, 20).astype(np.uint16)
    return _encode(Image.fromarray(values), "PNG")  # uint16 -> mode I;16


def png_bomb() -> bytes:
    """12,000 x 12,000 (144 MP) in about 100 bytes: refused from the header, never decoded."""
    return _png(12_000, 12_000, 8, 2, None)


def jpeg_cmyk() -> bytes:
    return _encode(_photo("CMYK"), "JPEG")


def jpeg_rgb() -> bytes:
    return _encode(_photo(), "JPEG")


def tflite() -> bytes:
    return build_synthetic_postprocess_tflite()


def tflite_buffer_past_end() -> bytes:
    """Valid header, a buffer whose length runs 1000 bytes past the end of the file."""
    data = tflite()
    anchors = line_anchors(6).tobytes()
    start = data.index(anchors)
    length = len(data) - start + 1000
    return data[: start - 4] + length.to_bytes(4, "little") + data[start:]


def zipped(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(name, data)
    return buf.getvalue()


# --- the cases: each returns the argv -----------------------------------------------------


def config_not_utf8(c: Ctx) -> list[str]:
    return c.input_a(config=b"\xff\xfe\x00 model { ssd {} }")


def config_without_model_block(c: Ctx) -> list[str]:
    return c.input_a(config="train_config { batch_size: 1 }\n")


def config_is_a_folder(c: Ctx) -> list[str]:
    args = c.input_a()
    (c.tmp / "pipeline.config").unlink()
    (c.tmp / "pipeline.config").mkdir()
    return args


def config_missing(c: Ctx) -> list[str]:
    args = c.input_a()
    (c.tmp / "pipeline.config").unlink()
    return args


def config_box_coder_not_faster_rcnn(c: Ctx) -> list[str]:
    config = ssd_config_text()
    old = next(line for line in config.splitlines() if "faster_rcnn_box_coder" in line)
    return c.input_a(config=config.replace(old, "    box_coder { mean_stddev_box_coder { stddev: 0.1 } }"))


def config_num_classes_zero(c: Ctx) -> list[str]:
    return c.input_a(config=ssd_config_text().replace("num_classes: 3", "num_classes: 0", 1))


def config_zero_input_height(c: Ctx) -> list[str]:
    return c.input_a(config=ssd_config_text().replace("height: 96 width: 96", "height: 0 width: 96", 1))


def config_label_map_path_missing(c: Ctx) -> list[str]:
    args = c.input_a("metadata", config=ssd_config_text(label_map="elsewhere/label_map.pbtxt"))
    i = args.index("--label-map")
    return args[:i] + args[i + 2 :]


def labels_gap_above_num_classes(c: Ctx) -> list[str]:
    return c.input_a(labels="item { id: 1 name: 'a' }\nitem { id: 2 name: 'b' }\nitem { id: 5 name: 'e' }\n")


def labels_fewer_than_num_classes(c: Ctx) -> list[str]:
    return c.input_a(labels="item { id: 1 name: 'a' }\nitem { id: 2 name: 'b' }\n")


def labels_empty(c: Ctx) -> list[str]:
    return c.input_a(labels="")


def labels_unclosed_brace(c: Ctx) -> list[str]:
    return c.input_a(labels="item { id: 1 name: 'a' \nitem { id: 2 name: 'b' }\n")


def labels_latin1(c: Ctx) -> list[str]:
    return c.input_a(labels="item { id: 1 name: 'caf\xe9' }\n".encode("latin-1"))


def labels_newline_in_name(c: Ctx) -> list[str]:
    return c.input_a(labels='item { id: 1 name: "a\\nb" }\nitem { id: 2 name: "b" }\nitem { id: 3 name: "c" }\n')


def labels_item_without_name(c: Ctx) -> list[str]:
    return c.input_a(labels='item { id: 1 }\nitem { id: 2 name: "b" }\nitem { id: 3 name: "c" }\n')


def labels_is_a_folder(c: Ctx) -> list[str]:
    args = c.input_a()
    (c.tmp / "label_map.pbtxt").unlink()
    (c.tmp / "label_map.pbtxt").mkdir()
    return args


def labels_more_than_saved_model_classes(c: Ctx) -> list[str]:
    lm = c.write("l.pbtxt", LABELS3 + "item { id: 4 name: 'star' }\n")
    return c.convert_b("--label-map", str(lm), "--variants", "fp32")


def labels_unicode_with_gap_works(c: Ctx) -> list[str]:
    lm = c.write("l.pbtxt", 'item { id: 1 name: "café" }\nitem { id: 3 name: "猫" display_name: "ねこ 🐱" }\n')
    return c.convert_b("--label-map", str(lm), "--variants", "fp32")


def checkpoint_zero_byte_index(c: Ctx) -> list[str]:
    return c.input_a("export")  # pre-flight resolves it; the restore reads the 0-byte index


def checkpoint_dir_is_a_file(c: Ctx) -> list[str]:
    args = c.input_a(checkpoint=False)
    (c.tmp / "ckpt").rmdir()
    (c.tmp / "ckpt").write_text("not a folder")
    return args


def checkpoint_state_names_missing_files(c: Ctx) -> list[str]:
    args = c.input_a(checkpoint=False)
    c.write("ckpt/checkpoint", 'model_checkpoint_path: "ckpt-7"\nall_model_checkpoint_paths: "ckpt-7"\n')
    return args


def images_folder_empty(c: Ctx) -> list[str]:
    return c.int8_with({})


def images_only_zero_byte(c: Ctx) -> list[str]:
    return c.int8_with({"a.jpg": b"", "b.png": b""})


def images_only_corrupt(c: Ctx) -> list[str]:
    good = jpeg_rgb()
    return c.int8_with({"truncated.jpg": good[: len(good) // 3], "garbage.png": os.urandom(500)})


def images_only_decompression_bomb(c: Ctx) -> list[str]:
    return c.int8_with({"bomb.png": png_bomb()})


def images_only_non_images(c: Ctx) -> list[str]:
    return c.int8_with({"notes.txt": b"hello", "labels.csv": b"a,b\n", "model.tflite": tflite()})


def images_cmyk_and_16_bit_work(c: Ctx) -> list[str]:
    files = {"cmyk.jpg": jpeg_cmyk(), "rgb16.png": png_rgb16(), "gray16.png": png_gray16(),
             "notes.txt": b"skipped", "empty.jpg": b""}
    return c.convert_b("--variants", "int8", "--images", str(c.images(files)), "--calibration-images", "4")


def lint_wrong_magic(c: Ctx) -> list[str]:
    data = tflite()
    return ["lint", str(c.write("m.tflite", data[:4] + b"TFL2" + data[8:])), "--no-gpu", "--quiet"]


def lint_zip_archive(c: Ctx) -> list[str]:
    return ["lint", str(c.write("m.tflite", zipped("detect.tflite", tflite()))), "--no-gpu", "--quiet"]


def lint_root_offset_outside(c: Ctx) -> list[str]:
    data = tflite()
    return ["lint", str(c.write("m.tflite", (len(data) + 8).to_bytes(4, "little") + data[4:])), "--no-gpu", "--quiet"]


def lint_buffer_past_end(c: Ctx) -> list[str]:
    return ["lint", str(c.write("m.tflite", tflite_buffer_past_end())), "--no-gpu", "--quiet"]


def lint_a_folder(c: Ctx) -> list[str]:
    return ["lint", str(c.tmp), "--no-gpu", "--quiet"]


def lint_unknown_contract(c: Ctx) -> list[str]:
    return ["lint", str(c.write("m.tflite", tflite())), "--contract", "iphone-app"]


def lint_max_results_zero(c: Ctx) -> list[str]:
    return ["lint", str(c.write("m.tflite", tflite())), "--max-results", "0"]


def saved_model_missing(c: Ctx) -> list[str]:
    return ["convert", "--saved-model", str(c.tmp / "nope"), "--out", str(c.out), "--quiet"]


def saved_model_is_a_tflite_file(c: Ctx) -> list[str]:
    return ["convert", "--saved-model", str(c.write("detect.tflite", tflite())), "--out", str(c.out), "--quiet"]


def frozen_graph_missing(c: Ctx) -> list[str]:
    return ["convert", "--frozen-graph", str(c.tmp / "tflite_graph.pb"), "--out", str(c.out), "--quiet"]


def frozen_graph_random_bytes(c: Ctx) -> list[str]:
    data = bytes(np.random.default_rng(3).integers(0, 256, 300, dtype=np.uint8))
    return ["convert", "--frozen-graph", str(c.write("g.pb", data)), "--out", str(c.out), "--quiet"]


def frozen_graph_is_a_tflite(c: Ctx) -> list[str]:
    return ["convert", "--frozen-graph", str(c.write("g.pb", tflite())), "--out", str(c.out), "--quiet"]


def frozen_graph_is_pbtxt(c: Ctx) -> list[str]:
    text = "node { name: 'normalized_input_image_tensor' op: 'Placeholder' }\n"
    return ["convert", "--frozen-graph", str(c.write("g.pb", text)), "--out", str(c.out), "--quiet"]


def out_under_a_file(c: Ctx) -> list[str]:
    args = c.input_a()
    c.write("afile", "keep me")
    args[args.index("--out") + 1] = str(c.tmp / "afile" / "out")
    return args


def gates_is_a_folder(c: Ctx) -> list[str]:
    (c.tmp / "gates").mkdir()
    return c.input_a() + ["--gates", str(c.tmp / "gates")]


def gates_section_not_a_table(c: Ctx) -> list[str]:
    return c.input_a() + ["--gates", str(c.write("g.toml", "accuracy = 3\n"))]


def gates_variant_not_a_table(c: Ctx) -> list[str]:
    return c.input_a() + ["--gates", str(c.write("g.toml", "[parity]\nfp32 = 1\n"))]


def gates_map_out_of_range(c: Ctx) -> list[str]:
    return c.input_a() + ["--gates", str(c.write("g.toml", "[accuracy]\nmin_map50 = 50\n"))]


def gates_invalid_toml(c: Ctx) -> list[str]:
    return c.input_a() + ["--gates", str(c.write("g.toml", "[accuracy\nmin_map50 = \n"))]


def ground_truth_missing(c: Ctx) -> list[str]:
    return c.input_a() + ["--ground-truth", str(c.tmp / "val")]


def run_unknown_contract(c: Ctx) -> list[str]:
    return c.input_a() + ["--contract", "iphone-app"]


def checkpoint_dir_without_config(c: Ctx) -> list[str]:
    (c.tmp / "ckpt").mkdir()
    return ["run", "--checkpoint-dir", str(c.tmp / "ckpt"), "--out", str(c.out)]


def calibration_images_zero(c: Ctx) -> list[str]:
    return ["convert", "--calibration-images", "0", "--out", str(c.out)]


def max_detections_negative(c: Ctx) -> list[str]:
    return ["convert", "--max-detections", "-1", "--out", str(c.out)]


def norm_two_values(c: Ctx) -> list[str]:
    return ["convert", "--norm-mean", "127.5,127.5", "--norm-std", "127.5", "--out", str(c.out)]


def norm_std_zero(c: Ctx) -> list[str]:
    (c.tmp / "sm").mkdir()
    return ["convert", "--saved-model", str(c.tmp / "sm"), "--norm-mean", "0", "--norm-std", "0", "--out", str(c.out)]


def variants_empty(c: Ctx) -> list[str]:
    return ["convert", "--variants", "", "--out", str(c.out)]


def int8_input_float(c: Ctx) -> list[str]:
    return ["convert", "--int8-input", "float32", "--out", str(c.out)]


def nms_unknown(c: Ctx) -> list[str]:
    return ["convert", "--nms", "soft", "--out", str(c.out)]


# --- the table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    build: Callable[[Ctx], list[str]]
    code: int
    #: each must appear (case-insensitive) in the one error line: the problem and the fix
    words: tuple[str, ...]
    #: "nothing": no model is written (the folder, if any, holds only the reports saying why);
    #: "report": report.json says what failed;
    #: "ok": the input must work
    outputs: str = "nothing"

    @property
    def id(self) -> str:
        return self.build.__name__


CASES = [
    # pipeline.config -> 10 (2: no labels for metadata)
    Case(config_not_utf8, 10, ("not a text pipeline.config", "utf-8")),
    Case(config_without_model_block, 10, ("no `model", "pipeline.config")),
    Case(config_is_a_folder, 10, ("is a folder", "pass the pipeline.config")),
    Case(config_missing, 10, ("does not exist", "--pipeline-config")),
    Case(config_box_coder_not_faster_rcnn, 10, ("mean_stddev_box_coder", "faster_rcnn_box_coder")),
    Case(config_num_classes_zero, 10, ("num_classes", "positive", "found 0")),
    Case(config_zero_input_height, 10, ("fixed_shape_resizer", "positive", "0x96")),
    Case(config_label_map_path_missing, 2, ("needs labels", "--label-map")),
    # label maps -> 11 (2: not a file); unicode and gaps work
    Case(labels_gap_above_num_classes, 11, ("highest id 5", "num_classes", "renumber")),
    Case(labels_fewer_than_num_classes, 11, ("highest id 2", "num_classes: 2", "add the missing classes 3..3")),
    Case(labels_empty, 11, ("no items", "item { id: 1")),
    Case(labels_unclosed_brace, 11, ("syntax error", ":2:", "expected protobuf text format")),
    Case(labels_latin1, 11, ("not utf-8", "save it as utf-8")),
    Case(labels_newline_in_name, 11, ("control character", "remove it")),
    Case(labels_item_without_name, 11, ("id 1 has no name", 'add name:')),
    Case(labels_is_a_folder, 2, ("--label-map", "not a file")),
    Case(labels_more_than_saved_model_classes, 11, ("highest id 4", "is 3", "remove/renumber")),
    Case(labels_unicode_with_gap_works, 0, (), outputs="ok"),
    # checkpoints -> 12
    Case(checkpoint_zero_byte_index, 12, ("ckpt-1", "unreadable", "copy it again")),
    Case(checkpoint_dir_is_a_file, 12, ("is a file, not a folder", "model_dir")),
    Case(checkpoint_state_names_missing_files, 12, ("no checkpoint", "ckpt-N.index")),
    # calibration images -> 14 (int8 refused; report.json says so); CMYK and 16-bit work
    Case(images_folder_empty, 14, ("no", "images", "--images"), outputs="report"),
    Case(images_only_zero_byte, 14, ("empty file", "--images"), outputs="report"),
    Case(images_only_corrupt, 14, ("truncated", "not a recognized image"), outputs="report"),
    Case(images_only_decompression_bomb, 14, ("decompression bomb", "smaller photos"), outputs="report"),
    Case(images_only_non_images, 14, ("not an image file", "--images"), outputs="report"),
    Case(images_cmyk_and_16_bit_work, 0, (), outputs="ok"),
    # .tflite for lint -> 15 (2: arguments)
    Case(lint_wrong_magic, 15, ("'TFL3'", "TFL2")),
    Case(lint_zip_archive, 15, ("zip", "unzip")),
    Case(lint_root_offset_outside, 15, ("root table offset", "inside the file")),
    Case(lint_buffer_past_end, 15, ("buffer 1 needs bytes", "truncated")),
    Case(lint_a_folder, 15, ("is a folder", ".tflite file")),
    Case(lint_unknown_contract, 2, ("--contract", "iphone-app", "bundled-app")),
    Case(lint_max_results_zero, 2, ("--max-results", "positive integer")),
    # model inputs (b)/(c) -> 13
    Case(saved_model_missing, 13, ("no saved_model.pb", "export_tflite_graph_tf2.py")),
    Case(saved_model_is_a_tflite_file, 13, ("not a SavedModel", "saved_model` folder")),
    Case(frozen_graph_missing, 13, ("does not exist", "tflite_graph.pb")),
    Case(frozen_graph_random_bytes, 13, ("not a binary GraphDef", "tflite_graph.pb")),
    Case(frozen_graph_is_a_tflite, 13, ("already a .tflite", "liteship lint")),
    Case(frozen_graph_is_pbtxt, 13, ("not a binary GraphDef", "not the .pbtxt")),
    # command-line arguments -> 2
    Case(out_under_a_file, 2, ("afile is a file", "choose another output folder")),
    Case(gates_is_a_folder, 2, ("--gates", "cannot be read", ".toml file")),
    Case(gates_section_not_a_table, 2, ("[accuracy]", "must be a table")),
    Case(gates_variant_not_a_table, 2, ("[parity.fp32]", "must be a table")),
    Case(gates_map_out_of_range, 2, ("accuracy.min_map50", "[0, 1]", "50")),
    Case(gates_invalid_toml, 2, ("not valid TOML", "line")),
    Case(ground_truth_missing, 2, ("--ground-truth", "does not exist", "VOC folder")),
    Case(run_unknown_contract, 2, ("iphone-app", "choose from", "bundled-app")),
    Case(checkpoint_dir_without_config, 2, ("needs both", "--pipeline-config is missing")),
    Case(calibration_images_zero, 2, ("--calibration-images", "positive integer", "'0'")),
    Case(max_detections_negative, 2, ("--max-detections", "positive integer", "'-1'")),
    Case(norm_two_values, 2, ("--norm-mean", "1 or 3 values", "found 2")),
    Case(norm_std_zero, 2, ("--norm-std", "must not be 0")),
    Case(variants_empty, 2, ("--variants", "unknown variant ''", "fp32, fp16, dynamic, int8")),
    Case(int8_input_float, 2, ("--int8-input", "'float32'", "uint8")),
    Case(nms_unknown, 2, ("--nms", "'soft'", "fast")),
]


def test_the_table_has_at_least_30_distinct_cases() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) >= 30
    assert {case.code for case in CASES} == {0, 2, 10, 11, 12, 13, 14, 15}


def _run(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exc:  # argparse refuses arguments with SystemExit(2) and its own message
        return int(exc.code or 0)


def _error_line(err: str) -> str:
    """The one line that names the problem; nothing else but a ``hint:`` or argparse's usage."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if ": error: " in line or line.startswith("liteship: internal error")]
    assert len(errors) == 1, err
    if not err.lstrip().startswith("usage:"):  # liteship's boundary: the error line, then an optional hint
        assert lines[0] == errors[0] and all(line.startswith("hint: ") for line in lines[1:]), err
    return errors[0] + "".join(" " + line for line in lines if line.startswith("hint: "))


def _complete_outputs(out: Path) -> list[Path]:
    return sorted(out.glob("models/*.tflite")) if out.exists() else []


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input(case: Case, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = Ctx(tmp_path, request)
    args = case.build(ctx)
    capsys.readouterr()
    code = _run(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code == case.code, err
    if case.outputs == "ok":
        _assert_worked(case, ctx)
        return
    line = _error_line(err).lower()
    assert "internal error" not in line
    for word in case.words:
        assert word.lower() in line, (word, line)
    if case.outputs == "nothing":
        if ctx.out.exists():  # argument errors stop before any folder is made
            assert_only_reports(ctx.out, case.code)
    else:
        _assert_report_says_int8_failed(ctx)


def _assert_report_says_int8_failed(ctx: Ctx) -> None:
    """int8 refused (exit 14): no model written, report.json says int8 failed and why."""
    assert _complete_outputs(ctx.out) == [], "int8 was refused: no model may be written"
    report = json.loads((ctx.out / "report.json").read_text(encoding="utf-8"))
    assert report["status"] != "ok"
    assert [(e["kind"], e["exit_code"]) for e in report["errors"]] == [("calibration", 14)]
    assert "refused" in report["calibration"]
    assert not list(ctx.out.rglob("*.partial")), "no temporary file may be left behind"


def _assert_worked(case: Case, ctx: Ctx) -> None:
    from liteship.tflite_inspect import inspect_file

    report = json.loads((ctx.out / "report.json").read_text(encoding="utf-8"))
    assert report["status"] == "ok" and not report["errors"]
    for model in _complete_outputs(ctx.out):
        inspect_file(model)
    if case.build is labels_unicode_with_gap_works:
        assert (ctx.out / "labelmap.txt").read_text(encoding="utf-8") == "café\n???\nねこ 🐱\n"
        assert [p.name for p in _complete_outputs(ctx.out)] == ["fp32.tflite"]
    if case.build is images_cmyk_and_16_bit_work:
        assert [p.name for p in _complete_outputs(ctx.out)] == ["int8.tflite"]
        calibration = json.dumps(report["calibration"])
        for name in ("notes.txt", "empty.jpg"):
            assert name in calibration, "skipped files are recorded with their reason"
