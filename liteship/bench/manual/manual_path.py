"""The manual path users follow today, one process per step, as commands.

    python liteship/bench/manual/manual_path.py --work /tmp/manual      # on the embedded demo

1. ``object_detection/export_tflite_graph_tf2.py`` (the OD API's own TFLite exporter) with
   its usual flags. On TF 2.21 the OD API does not import as installed (protoc-3 ``*_pb2``
   modules, a module-level ``tensorflow_io`` import, ...), so the process first imports
   ``liteship.odapi`` -- liteship's compatibility layer, which fixes that in memory -- and
   then runs the exporter module unchanged as ``__main__``:
   ``python -c "import liteship.odapi, runpy; runpy.run_module('object_detection.export_tflite_graph_tf2', run_name='__main__')" --pipeline_config_path ...``
2. one converter script per variant (``convert_fp32.py``, ``convert_fp16.py``,
   ``convert_dynamic.py``, ``convert_int8.py``), each its own process;
3. ``add_metadata.py``: tflite-support's ObjectDetector metadata writer on all four models.

liteship bench times exactly these commands (``steps``) against ``liteship metadata``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = ("fp32", "fp16", "dynamic", "int8")

EXPORT_SNIPPET = (
    "import liteship.odapi, runpy; "
    "runpy.run_module('object_detection.export_tflite_graph_tf2', run_name='__main__')"
)


def steps(
    python: str,
    pipeline_config: Path,
    checkpoint_dir: Path,
    images: Path,
    labels_txt: Path,
    work: Path,
    *,
    size: tuple[int, int] = (160, 160),
    mean: float = 127.5,
    std: float = 127.5,
    max_detections: int = 10,
    calibration_images: int = 100,
) -> list[tuple[str, list[str]]]:
    """(name, argv) of every process of the manual path, in order; outputs go under ``work``."""
    exported = work / "exported"
    saved_model = exported / "saved_model"
    models = work / "models"
    out = [(
        "export",
        [python, "-c", EXPORT_SNIPPET,
         "--pipeline_config_path", str(pipeline_config),
         "--trained_checkpoint_dir", str(checkpoint_dir),
         "--output_directory", str(exported),
         "--max_detections", str(max_detections)],
    )]
    for variant in VARIANTS:
        argv = [python, str(HERE / f"convert_{variant}.py"), "--saved-model", str(saved_model),
                "--out", str(models / f"{variant}.tflite")]
        if variant == "int8":
            argv += ["--images", str(images), "--size", f"{size[0]}x{size[1]}", "--mean", str(mean),
                     "--std", str(std), "--num-images", str(calibration_images)]
        out.append((f"convert {variant}", argv))
    out.append((
        "metadata",
        [python, str(HERE / "add_metadata.py"), "--labels", str(labels_txt), "--out-dir", str(work / "shipped"),
         "--mean", str(mean), "--std", str(std), *(str(models / f"{v}.tflite") for v in VARIANTS)],
    ))
    return out


def labelmap_txt(label_map_pbtxt: Path) -> str:
    """What users type by hand: one name per line, in id order, no background."""
    text = Path(label_map_pbtxt).read_text(encoding="utf-8")
    items = re.findall(r"item\s*\{(.*?)\}", text, flags=re.S)
    named = []
    for item in items:
        ident = int(re.search(r"\bid:\s*(\d+)", item).group(1))  # type: ignore[union-attr]
        name = re.search(r"\bname:\s*['\"]([^'\"]*)['\"]", item).group(1)  # type: ignore[union-attr]
        named.append((ident, name))
    return "".join(f"{name}\n" for _, name in sorted(named))


def main(argv: list[str] | None = None) -> int:
    from liteship.pipeline import DEMO_DIR

    parser = argparse.ArgumentParser(description="Run the manual path (on the embedded demo) and time each step.")
    parser.add_argument("--work", type=Path, required=True, help="folder for every output (created)")
    args = parser.parse_args(argv)
    model = DEMO_DIR / "model"
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "models").mkdir(exist_ok=True)
    labels = args.work / "labelmap.txt"
    labels.write_text(labelmap_txt(model / "label_map.pbtxt"), encoding="utf-8")
    total = 0.0
    for name, command in steps(sys.executable, model / "pipeline.config", model / "checkpoint",
                               DEMO_DIR / "data" / "calibration", labels, args.work):
        t0 = time.perf_counter()
        code = subprocess.run(command, check=False).returncode
        seconds = time.perf_counter() - t0
        total += seconds
        print(f"{name:<16} {seconds:7.1f} s  exit {code}", file=sys.stderr)
        if code != 0:
            return code
    print(f"{'total':<16} {total:7.1f} s  -> {args.work / 'shipped'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
