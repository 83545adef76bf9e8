"""``liteship run PATH`` recognises each folder an OD API tool writes (the files as those tools
name them; contents empty except where the kind is told by content), and refuses the two
folders that cannot go to TFLite with what to give instead. No TensorFlow."""

from __future__ import annotations

from pathlib import Path

import pytest

from liteship.converter import discover
from liteship.converter.discover import FolderKind
from liteship.errors import ModelInputProblem, UsageProblem

#: folder kind -> the files its tool writes
LAYOUTS: dict[str, list[str]] = {
    "model_main_tf2": ["pipeline.config", "checkpoint", "ckpt-3.index", "ckpt-3.data-00000-of-00001",
                       "ckpt-12.index", "ckpt-12.data-00000-of-00001", "train/events.out.tfevents.1"],
    "exporter_main_v2": ["pipeline.config", "checkpoint/checkpoint", "checkpoint/ckpt-0.index",
                         "checkpoint/ckpt-0.data-00000-of-00001", "saved_model/saved_model.pb",
                         "saved_model/variables/variables.index"],
    "tf1_model_main": ["pipeline.config", "checkpoint", "graph.pbtxt", "model.ckpt-200.index",
                       "model.ckpt-200.meta", "model.ckpt-5576.index", "model.ckpt-5576.meta",
                       "model.ckpt-5576.data-00000-of-00001", "label_map.pbtxt"],
    "tf1_export_inference_graph": ["pipeline.config", "checkpoint", "frozen_inference_graph.pb", "model.ckpt.index",
                                   "model.ckpt.meta", "model.ckpt.data-00000-of-00001", "saved_model/saved_model.pb"],
    "export_tflite_graph_tf2": ["saved_model/saved_model.pb", "saved_model/variables/variables.index"],
    "export_tflite_ssd_graph": ["tflite_graph.pb", "tflite_graph.pbtxt"],
}


def _make(root: Path, files: list[str], postprocess: bool = False) -> Path:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        content = b"... TFLite_Detection_PostProcess ..." if postprocess and rel.endswith("saved_model.pb") else b"x"
        path.write_bytes(content)
    return root


@pytest.mark.parametrize(
    ("layout", "kind", "uses"),
    [
        ("model_main_tf2", FolderKind.TF2_TRAINING, {"pipeline_config": "pipeline.config", "checkpoint_dir": "."}),
        ("exporter_main_v2", FolderKind.TF2_EXPORT, {"pipeline_config": "pipeline.config", "checkpoint_dir": "checkpoint"}),
        ("tf1_model_main", FolderKind.TF1_TRAINING,
         {"pipeline_config": "pipeline.config", "checkpoint_dir": ".", "label_map": "label_map.pbtxt"}),
        ("tf1_export_inference_graph", FolderKind.TF1_INFERENCE_GRAPH,
         {"pipeline_config": "pipeline.config", "checkpoint_dir": ".", "checkpoint": "model.ckpt"}),
        ("export_tflite_graph_tf2", FolderKind.TFLITE_SAVED_MODEL, {"saved_model": "saved_model"}),
        ("export_tflite_ssd_graph", FolderKind.TF1_TFLITE_GRAPH, {"frozen_graph": "tflite_graph.pb"}),
    ],
)
def test_each_folder_kind_is_recognised_with_the_input_it_gives(tmp_path: Path, layout: str, kind: FolderKind,
                                                                 uses: dict[str, str]) -> None:
    root = _make(tmp_path / layout, LAYOUTS[layout], postprocess=layout == "export_tflite_graph_tf2")
    found = discover.discover(root)
    assert found.kind is kind
    fields = ("pipeline_config", "checkpoint_dir", "checkpoint", "saved_model", "frozen_graph", "label_map")
    for name in fields:
        value = getattr(found, name)
        if name not in uses:
            assert value is None, (name, value)
        elif name == "checkpoint":
            assert value == uses[name]
        else:
            assert value == (root / uses[name] if uses[name] != "." else root), name
    text = found.describe()
    assert text.startswith(f"found: {kind.value}") and "\nusing: " in text


def test_the_saved_model_folder_itself_is_recognised(tmp_path: Path) -> None:
    root = _make(tmp_path / "saved_model", ["saved_model.pb", "variables/variables.index"], postprocess=True)
    found = discover.discover(root)
    assert found.kind is FolderKind.TFLITE_SAVED_MODEL and found.saved_model == root


def test_a_frozen_inference_graph_alone_is_refused_saying_what_to_give(tmp_path: Path) -> None:
    root = _make(tmp_path / "exported", ["frozen_inference_graph.pb", "pipeline.config"])
    with pytest.raises(ModelInputProblem, match="model.ckpt.*tflite_graph.pb"):
        discover.discover(root)


def test_an_exporter_saved_model_without_checkpoint_is_refused_saying_what_to_give(tmp_path: Path) -> None:
    root = _make(tmp_path / "exported", ["saved_model/saved_model.pb", "pipeline.config"])
    with pytest.raises(ModelInputProblem, match="Flex.*checkpoint/.*export_tflite_graph_tf2"):
        discover.discover(root)


def test_a_checkpoint_folder_without_config_asks_for_it(tmp_path: Path) -> None:
    root = _make(tmp_path / "train", ["checkpoint", "model.ckpt-7.index"])
    with pytest.raises(UsageProblem, match="no pipeline.config.*--pipeline-config"):
        discover.discover(root)


def test_an_unrelated_folder_and_a_missing_path_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageProblem, match="not a folder liteship recognises"):
        discover.discover(_make(tmp_path / "photos", ["a.jpg"]))
    with pytest.raises(UsageProblem, match="does not exist"):
        discover.discover(tmp_path / "nope")


def test_checkpoint_dir_of_an_exporter_folder_means_its_checkpoint_subfolder(tmp_path: Path) -> None:
    root = _make(tmp_path / "zoo", LAYOUTS["exporter_main_v2"])
    assert discover.checkpoint_dir(root) == root / "checkpoint"
    train = _make(tmp_path / "train", LAYOUTS["model_main_tf2"])
    assert discover.checkpoint_dir(train) == train
    found = discover.saved_model_parent(root / "saved_model")
    assert found is not None and found.kind is FolderKind.TF2_EXPORT and found.checkpoint_dir == root / "checkpoint"


def test_cli_run_path_conflicting_with_a_model_flag_is_a_usage_error(tmp_path: Path, capsys) -> None:
    from liteship.cli import main

    root = _make(tmp_path / "graph", LAYOUTS["export_tflite_ssd_graph"])
    code = main(["run", str(root), "--frozen-graph", str(root / "tflite_graph.pb"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "not both" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
