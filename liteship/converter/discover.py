"""``liteship run PATH``: which OD API folder is this, and which model input does it give?

The folders users have on disk, by the tool that wrote them:

=======================  ==============================================  ==================
folder                   what is in it                                   input used
=======================  ==============================================  ==================
model_main_tf2.py        ``ckpt-N.index``, ``checkpoint`` (+ config)      (a) config + dir
exporter_main_v2.py /    ``pipeline.config``, ``checkpoint/ckpt-0.*``,    (a) config +
TF2 model zoo            ``saved_model/`` (NMS as TF ops)                 ``checkpoint/``
TF1 model_main.py        ``model.ckpt-N.*``, ``checkpoint``, config       (d) config + dir
export_inference_graph   ``frozen_inference_graph.pb``, ``model.ckpt.*``, (d) config +
(TF1) / TF1 model zoo    ``pipeline.config``                              ``model.ckpt``
export_tflite_graph_tf2  ``saved_model/`` with TFLite_Detection_PostProc  (b)
export_tflite_ssd_graph  ``tflite_graph.pb``                              (c)
=======================  ==============================================  ==================

:func:`recognise` is pure (a :class:`Listing` in, a :class:`Found` out, or a typed refusal);
:func:`list_folder` is the only part that reads the disk.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path

from liteship.errors import ModelInputProblem, UsageProblem
from liteship.types import POSTPROCESS_OP

_TF2_INDEX = re.compile(r"^ckpt-(\d+)\.index$")
_TF1_INDEX = re.compile(r"^model\.ckpt(?:-(\d+))?\.index$")
_LABEL_MAP = re.compile(r".*label_map.*\.pbtxt$|^labelmap\.pbtxt$")


class FolderKind(str, enum.Enum):
    TF2_TRAINING = "model_main_tf2.py training folder"
    TF2_EXPORT = "exporter_main_v2.py output / TF2 model-zoo download"
    TF1_TRAINING = "TF1 model_main.py training folder"
    TF1_INFERENCE_GRAPH = "TF1 export_inference_graph.py output / TF1 model-zoo download"
    TFLITE_SAVED_MODEL = "export_tflite_graph_tf2.py output"
    TF1_TFLITE_GRAPH = "TF1 export_tflite_ssd_graph.py output"


@dataclass(frozen=True)
class Listing:
    """What :func:`recognise` looks at: file paths relative to the folder (up to two levels,
    ``/``-separated), and the SavedModels (relative dirs) holding a TFLite_Detection_PostProcess."""

    root: Path
    files: frozenset[str]
    postprocess_saved_models: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Found:
    kind: FolderKind
    root: Path
    pipeline_config: Path | None = None
    checkpoint_dir: Path | None = None
    checkpoint: str | None = None
    saved_model: Path | None = None
    frozen_graph: Path | None = None
    label_map: Path | None = None
    seen: tuple[str, ...] = ()

    def describe(self) -> str:
        """Two lines: what was found, and what will be used."""
        use = []
        for flag, value in (("--pipeline-config", self.pipeline_config), ("--checkpoint-dir", self.checkpoint_dir),
                            ("--checkpoint", self.checkpoint), ("--saved-model", self.saved_model),
                            ("--frozen-graph", self.frozen_graph), ("--label-map", self.label_map)):
            if value is not None:
                use.append(f"{flag} {value}")
        return f"found: {self.kind.value} in {self.root} ({', '.join(self.seen)})\nusing: {' '.join(use)}"


def list_folder(root: Path) -> Listing:
    root = Path(root)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is a file, not a folder"
        raise UsageProblem(f"{root} {what}; give the folder your OD API tool wrote (training folder, export folder)")
    files: set[str] = set()
    for path in root.iterdir():
        if path.is_file():
            files.add(path.name)
        elif path.is_dir():
            for sub in path.iterdir():
                files.add(f"{path.name}/{sub.name}" + ("/" if sub.is_dir() else ""))
    postprocess = set()
    for rel in ("saved_model.pb", "saved_model/saved_model.pb"):
        if rel in files and _has_postprocess(root / rel):
            postprocess.add(str(Path(rel).parent))
    return Listing(root, frozenset(files), frozenset(postprocess))


def _has_postprocess(saved_model_pb: Path) -> bool:
    try:
        return POSTPROCESS_OP.encode() in saved_model_pb.read_bytes()
    except OSError:
        return False


def _latest(files: frozenset[str], pattern: re.Pattern[str], folder: str = "") -> str | None:
    """The checkpoint prefix (file name without .index) with the highest step in ``folder``."""
    best: tuple[int, str] | None = None
    for f in files:
        name = f[len(folder):] if folder and f.startswith(folder) else (f if not folder and "/" not in f else None)
        if name is None:
            continue
        m = pattern.match(name)
        if m:
            step = int(m.group(1)) if m.group(1) else -1
            if best is None or step > best[0]:
                best = (step, name.removesuffix(".index"))
    return best[1] if best else None


def recognise(listing: Listing) -> Found:
    """The folder kind and the input it gives; refusals say what to give instead."""
    files, root = listing.files, listing.root
    config = root / "pipeline.config" if "pipeline.config" in files else None
    labels = sorted(f for f in files if "/" not in f and _LABEL_MAP.match(f))
    label_map = root / labels[0] if len(labels) == 1 else None

    def found(kind: FolderKind, seen: list[str], **kw: object) -> Found:
        return Found(kind=kind, root=root, label_map=label_map, seen=tuple(seen), **kw)  # type: ignore[arg-type]

    def need_config(kind: FolderKind, seen: list[str]) -> None:
        if config is None:
            raise UsageProblem(
                f"{root} looks like a {kind.value} ({', '.join(seen)}) but has no pipeline.config; "
                "pass the config it was trained with: --pipeline-config FILE"
            )

    if "tflite_graph.pb" in files:
        return found(FolderKind.TF1_TFLITE_GRAPH, ["tflite_graph.pb"], frozen_graph=root / "tflite_graph.pb")
    for rel in sorted(listing.postprocess_saved_models):
        path = root if rel == "." else root / rel
        return found(FolderKind.TFLITE_SAVED_MODEL, [f"{'' if rel == '.' else rel + '/'}saved_model.pb with {POSTPROCESS_OP}"],
                     saved_model=path)
    tf2_sub = _latest(files, _TF2_INDEX, "checkpoint/")
    if tf2_sub is not None:
        has_saved_model = any(f.startswith("saved_model/") for f in files)
        seen = [f"checkpoint/{tf2_sub}.index"] + (["saved_model/"] if has_saved_model else [])
        need_config(FolderKind.TF2_EXPORT, seen)
        return found(FolderKind.TF2_EXPORT, seen + ["pipeline.config"], pipeline_config=config,
                     checkpoint_dir=root / "checkpoint")
    tf1 = _latest(files, _TF1_INDEX)
    if tf1 is not None:
        if "frozen_inference_graph.pb" in files or tf1 == "model.ckpt":
            seen = [f"{tf1}.index"] + (["frozen_inference_graph.pb"] if "frozen_inference_graph.pb" in files else [])
            need_config(FolderKind.TF1_INFERENCE_GRAPH, seen)
            return found(FolderKind.TF1_INFERENCE_GRAPH, seen + ["pipeline.config"], pipeline_config=config,
                         checkpoint_dir=root, checkpoint=tf1)
        seen = [f"{tf1}.index"] + (["checkpoint"] if "checkpoint" in files else [])
        need_config(FolderKind.TF1_TRAINING, seen)
        return found(FolderKind.TF1_TRAINING, seen + ["pipeline.config"], pipeline_config=config, checkpoint_dir=root)
    tf2 = _latest(files, _TF2_INDEX)
    if tf2 is not None:
        seen = [f"{tf2}.index"] + (["checkpoint"] if "checkpoint" in files else [])
        need_config(FolderKind.TF2_TRAINING, seen)
        return found(FolderKind.TF2_TRAINING, seen + ["pipeline.config"], pipeline_config=config, checkpoint_dir=root)
    if "frozen_inference_graph.pb" in files:
        raise ModelInputProblem(
            f"{root / 'frozen_inference_graph.pb'} is a TF1 inference graph (export_inference_graph.py): its "
            "postprocessing is TF ops TFLite cannot run, and no model.ckpt is beside it; give the folder with the "
            "model.ckpt files and pipeline.config it was exported from (liteship exports TF1 checkpoints itself), "
            "or the tflite_graph.pb that export_tflite_ssd_graph.py wrote"
        )
    if "saved_model.pb" in files or "saved_model/saved_model.pb" in files:
        raise ModelInputProblem(
            f"{root} holds a SavedModel without {POSTPROCESS_OP} (an exporter_main_v2.py export: its NMS becomes "
            "Flex ops) and no checkpoint beside it; give the exporter's whole output folder (with checkpoint/ and "
            "pipeline.config), the training folder, or the saved_model/ of export_tflite_graph_tf2.py"
        )
    shown = ", ".join(sorted(files)[:8]) or "nothing"
    raise UsageProblem(
        f"{root} is not a folder liteship recognises (found: {shown}); give a training folder (ckpt-N or "
        "model.ckpt-N files + pipeline.config), an exporter output folder, a saved_model/ from "
        "export_tflite_graph_tf2.py, or a tflite_graph.pb"
    )


def discover(root: Path) -> Found:
    return recognise(list_folder(root))


def checkpoint_dir(path: Path) -> Path:
    """``--checkpoint-dir`` given an exporter_main_v2 / model-zoo folder means its ``checkpoint/``."""
    path = Path(path)
    sub = path / "checkpoint"
    if sub.is_dir() and not any(path.glob("*.index")) and any(sub.glob("*.index")):
        return sub
    return path


def saved_model_parent(saved_model: Path) -> Found | None:
    """``--saved-model X/saved_model`` of an exporter_main_v2 / zoo folder (no postprocess op,
    ``checkpoint/`` and ``pipeline.config`` beside it): that folder's input (a); else None."""
    saved_model = Path(saved_model)
    pb = saved_model / "saved_model.pb"
    if not pb.is_file() or _has_postprocess(pb):
        return None
    parent = saved_model.parent
    if not (parent / "checkpoint").is_dir():
        return None
    try:
        found = discover(parent)
    except (UsageProblem, ModelInputProblem):
        return None
    return found if found.kind is FolderKind.TF2_EXPORT else None
