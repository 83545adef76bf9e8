"""Label map reading (through the OD API's load_labelmap) and labelmap.txt writing."""

from __future__ import annotations

from pathlib import Path

import pytest

import liteship  # noqa: F401 - before anything that may import TensorFlow
from liteship.converter.labels import (
    GAP_LABEL,
    LabelItem,
    LabelMap,
    check_num_classes,
    label_map_from_labels,
    labelmap_txt,
    read_label_map,
)
from liteship.errors import LabelMapProblem


def write(tmp_path: Path, text: str, name: str = "label_map.pbtxt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problem(path: Path) -> str:
    with pytest.raises(LabelMapProblem) as info:
        read_label_map(path)
    message = info.value.message
    assert "\n" not in message, "messages are one line"
    assert str(path) in message, "messages name the file"
    return message


# --- read_label_map: goes through the OD API, which imports TensorFlow ------------------


@pytest.mark.tf
class TestReadLabelMap:
    def test_reads_items_in_file_order_with_display_names(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            'item { id: 2 name: "dog" }\n'
            "item {\n  id: 1\n  name: 'cat'\n  display_name: 'Cat'\n}\n",
        )
        label_map = read_label_map(path)
        assert label_map.items == (LabelItem(2, "dog", None), LabelItem(1, "cat", "Cat"))
        assert label_map.path == path

    def test_unicode_names_round_trip_to_labelmap_txt(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            'item { id: 1 name: "café" }\n'
            'item { id: 2 name: "猫" display_name: "ねこ 🐱" }\n'
            'item { id: 3 name: "\\"quoted\\"" }\n',
        )
        label_map = read_label_map(path)
        assert [i.label for i in label_map.items] == ["café", "ねこ 🐱", '"quoted"']
        txt = tmp_path / "labelmap.txt"
        txt.write_text(labelmap_txt(label_map), encoding="utf-8")
        assert txt.read_text(encoding="utf-8").splitlines() == ["café", "ねこ 🐱", '"quoted"']

    def test_missing_file_names_the_path(self, tmp_path: Path) -> None:
        message = problem(tmp_path / "nope.pbtxt")
        assert "does not exist" in message

    def test_folder_instead_of_file(self, tmp_path: Path) -> None:
        assert "not a file" in problem(tmp_path)

    def test_syntax_error_reports_line_and_column(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'item {\n  id: 1\n  name: "a"\n}\nitem {\n  id: 2\n  nme: "b"\n}\n')
        message = problem(path)
        assert f"{path}:7:3" in message
        assert "nme" in message and "syntax error" in message

    def test_unclosed_brace_is_a_syntax_error(self, tmp_path: Path) -> None:
        message = problem(write(tmp_path, 'item {\n  id: 1\n  name: "a"\n'))
        assert "syntax error" in message

    def test_field_given_twice_is_rejected(self, tmp_path: Path) -> None:
        # load_labelmap's text_format.Merge would silently keep "b"
        message = problem(write(tmp_path, 'item {\n  id: 1\n  name: "a"\n  name: "b"\n}\n'))
        assert "syntax error" in message and ":4:" in message

    @pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
    def test_empty_label_map_has_no_items(self, tmp_path: Path, text: str) -> None:
        assert "has no items" in problem(write(tmp_path, text))

    def test_id_zero_is_reserved_for_background(self, tmp_path: Path) -> None:
        message = problem(write(tmp_path, 'item { id: 0 name: "cat" }\nitem { id: 1 name: "dog" }\n'))
        assert "id 0 is reserved for the background class" in message
        assert "renumber your classes from 1" in message
        assert "'cat'" in message

    def test_background_at_id_zero_is_rejected_although_odapi_accepts_it(self, tmp_path: Path) -> None:
        message = problem(write(tmp_path, 'item { id: 0 name: "background" }\nitem { id: 1 name: "a" }\n'))
        assert "ids start at 1" in message

    def test_item_without_id_gets_id_zero_and_is_rejected(self, tmp_path: Path) -> None:
        assert "id 0" in problem(write(tmp_path, 'item { name: "cat" }\n'))

    def test_negative_id_names_the_item(self, tmp_path: Path) -> None:
        message = problem(write(tmp_path, 'item { id: 1 name: "a" }\nitem { id: -3 name: "neg" }\n'))
        assert "'neg'" in message and "-3" in message and "ids start at 1" in message

    def test_duplicate_ids_name_both_items(self, tmp_path: Path) -> None:
        message = problem(write(tmp_path, 'item { id: 1 name: "cat" }\nitem { id: 1 name: "dog" }\n'))
        assert "'cat'" in message and "'dog'" in message and "id 1" in message

    @pytest.mark.parametrize("escaped", ["a\\nb", "a\\rb", "a\\tb", "a\\x00b", "a\\342\\200\\250b"])
    def test_control_characters_in_names_are_rejected(self, tmp_path: Path, escaped: str) -> None:
        message = problem(write(tmp_path, f'item {{ id: 1 name: "{escaped}" }}\n'))
        assert "control character" in message and "labelmap.txt" in message

    def test_newline_in_display_name_is_rejected(self, tmp_path: Path) -> None:
        message = problem(write(tmp_path, 'item { id: 1 name: "a" display_name: "x\\ny" }\n'))
        assert "display_name" in message

    def test_item_without_name_is_rejected(self, tmp_path: Path) -> None:
        assert "has no name" in problem(write(tmp_path, "item { id: 1 }\n"))

    def test_non_utf8_file(self, tmp_path: Path) -> None:
        path = tmp_path / "label_map.pbtxt"
        path.write_bytes(b'item { id: 1 name: "\xff\xfe" }\n')
        assert "UTF-8" in problem(path)


# --- labelmap.txt ----------------------------------------------------------------------


def test_labelmap_txt_first_line_is_id_1_without_background() -> None:
    label_map = LabelMap((LabelItem(2, "dog"), LabelItem(1, "cat")))
    assert labelmap_txt(label_map) == "cat\ndog\n"


def test_labelmap_txt_fills_gaps_with_question_marks_at_the_right_line() -> None:
    label_map = LabelMap((LabelItem(1, "cat"), LabelItem(4, "bird")))
    lines = labelmap_txt(label_map).split("\n")
    assert lines == ["cat", GAP_LABEL, GAP_LABEL, "bird", ""]
    assert lines[4 - 1] == "bird", "line index = id - 1"


def test_labelmap_txt_prefers_display_name() -> None:
    label_map = LabelMap((LabelItem(1, "/m/01yrx", "Cat"), LabelItem(2, "dog", None)))
    assert labelmap_txt(label_map) == "Cat\ndog\n"


def test_labelmap_txt_ends_every_line_with_newline() -> None:
    assert labelmap_txt(label_map_from_labels(["only"])) == "only\n"


# --- label_map_from_labels -------------------------------------------------------------


def test_label_map_from_labels_numbers_from_1() -> None:
    label_map = label_map_from_labels(["circle", "square", "triangle"])
    assert [(i.id, i.name) for i in label_map.items] == [(1, "circle"), (2, "square"), (3, "triangle")]
    assert label_map.path is None
    assert labelmap_txt(label_map) == "circle\nsquare\ntriangle\n"


def test_label_map_from_labels_rejects_empty_and_control_chars() -> None:
    with pytest.raises(LabelMapProblem, match="has no items"):
        label_map_from_labels([])
    with pytest.raises(LabelMapProblem, match="control character"):
        label_map_from_labels(["ok", "bad\nname"])
    with pytest.raises(LabelMapProblem, match="has no name"):
        label_map_from_labels(["ok", ""])


# --- check_num_classes -----------------------------------------------------------------


def test_check_num_classes_accepts_gaps_when_max_id_matches() -> None:
    check_num_classes(LabelMap((LabelItem(1, "a"), LabelItem(3, "c"))), 3)


def test_check_num_classes_too_few_in_config_names_field_and_numbers(tmp_path: Path) -> None:
    config = tmp_path / "pipeline.config"
    label_map = LabelMap((LabelItem(1, "a"), LabelItem(2, "b"), LabelItem(3, "c")), tmp_path / "lm.pbtxt")
    with pytest.raises(LabelMapProblem) as info:
        check_num_classes(label_map, 2, config)
    message = info.value.message
    assert "model.ssd.num_classes" in message and str(config) in message
    assert "highest id 3" in message and "is 2" in message
    assert str(tmp_path / "lm.pbtxt") in message


def test_check_num_classes_too_many_in_config_suggests_both_fixes() -> None:
    with pytest.raises(LabelMapProblem) as info:
        check_num_classes(label_map_from_labels(["a", "b"]), 5)
    message = info.value.message
    assert "set model.ssd.num_classes: 2 in pipeline.config" in message
    assert "add the missing classes 3..5 to the label map" in message
