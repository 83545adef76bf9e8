"""The on-device ML runtimes an APK carries, told by their native libraries, and what is known
to go wrong with them. The table is data: library file name -> runtime, the Maven artifact that
ships it, and a note when a release is known to break a Play requirement.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownLibrary:
    runtime: str  # LiteRT 2.x | LiteRT 1.x / TFLite | MediaPipe Tasks | Task Library
    artifact: str  # the Maven artifact(s) that ship it
    #: what is known about its 16 KB alignment (shown when the measured check fails)
    known_problem: str = ""


LITERT_2 = "LiteRT 2.x"
LITERT_1 = "LiteRT 1.x / TFLite"
MEDIAPIPE = "MediaPipe Tasks"
TASK_LIBRARY = "TFLite Task Library"

_OLD_TFLITE = ("some org.tensorflow:tensorflow-lite 2.16.x/2.17.0 builds ship it 4 KB-aligned; "
               "com.google.ai.edge.litert:litert 1.4.0+ or 2.x ship 16 KB-aligned builds")

KNOWN_LIBRARIES: dict[str, KnownLibrary] = {
    "libtensorflowlite_jni.so": KnownLibrary(LITERT_1, "org.tensorflow:tensorflow-lite or com.google.ai.edge.litert:litert 1.x", _OLD_TFLITE),
    "libtensorflowlite_gpu_jni.so": KnownLibrary(LITERT_1, "org.tensorflow:tensorflow-lite-gpu or com.google.ai.edge.litert:litert-gpu", _OLD_TFLITE),
    "libtensorflowlite_flex_jni.so": KnownLibrary(LITERT_1, "org.tensorflow:tensorflow-lite-select-tf-ops"),
    "liblitert_jni.so": KnownLibrary(LITERT_2, "com.google.ai.edge.litert:litert 2.x (CompiledModel API)"),
    "libLiteRt.so": KnownLibrary(LITERT_2, "com.google.ai.edge.litert:litert 2.x"),
    "libLiteRtGpuAccelerator.so": KnownLibrary(LITERT_2, "com.google.ai.edge.litert:litert 2.x (GPU accelerator)"),
    "libLiteRtOpenClAccelerator.so": KnownLibrary(LITERT_2, "com.google.ai.edge.litert:litert 2.x (GPU accelerator)"),
    "libLiteRtClGlAccelerator.so": KnownLibrary(LITERT_2, "com.google.ai.edge.litert:litert 2.x (GPU accelerator)"),
    "libtask_vision_jni.so": KnownLibrary(
        TASK_LIBRARY, "org.tensorflow:tensorflow-lite-task-vision",
        "tensorflow-lite-task-vision 0.4.4, the last release, ships libtask_vision_jni.so 4 KB-aligned and no "
        "16 KB build exists: move to MediaPipe Tasks (com.google.mediapipe:tasks-vision) or LiteRT"),
    "libtask_text_jni.so": KnownLibrary(TASK_LIBRARY, "org.tensorflow:tensorflow-lite-task-text"),
    "libtask_audio_jni.so": KnownLibrary(TASK_LIBRARY, "org.tensorflow:tensorflow-lite-task-audio"),
    "libmediapipe_tasks_vision_jni.so": KnownLibrary(MEDIAPIPE, "com.google.mediapipe:tasks-vision"),
    "libmediapipe_tasks_jni.so": KnownLibrary(MEDIAPIPE, "com.google.mediapipe:tasks-vision / tasks-text / tasks-audio"),
    "libmediapipe_tasks_text_jni.so": KnownLibrary(MEDIAPIPE, "com.google.mediapipe:tasks-text"),
    "libmediapipe_tasks_audio_jni.so": KnownLibrary(MEDIAPIPE, "com.google.mediapipe:tasks-audio"),
    "libllm_inference_engine_jni.so": KnownLibrary(MEDIAPIPE, "com.google.mediapipe:tasks-genai"),
}

#: liteship's own app (android_app/): its contract is bundled-app whatever runtimes it carries
BUNDLED_APP_PACKAGE = "dev.liteship.demo"

#: which app contract a runtime's typical app follows (liteship/validation/contracts.py names);
#: a name liteship does not know (yet) is reported and skipped
RUNTIME_CONTRACTS: dict[str, tuple[str, ...]] = {
    TASK_LIBRARY: ("task-library",),
    MEDIAPIPE: ("mediapipe",),
    # LiteRT 2.x ships CompiledModel: its buffers come from the stored output shapes (LiteRT#9518)
    LITERT_2: ("litert-sample", "litert-compiled"),
    LITERT_1: ("litert-sample",),
}


def library_of(file_name: str) -> KnownLibrary | None:
    return KNOWN_LIBRARIES.get(file_name)


def infer_contracts(runtimes: set[str], package: str | None, known: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """(contracts to lint with, notes) from the runtimes found; only names in ``known``."""
    notes: list[str] = []
    if package == BUNDLED_APP_PACKAGE:
        return ("bundled-app",), [f"{package} is liteship's own app: its contract is bundled-app"]
    wanted: list[str] = []
    for runtime in (TASK_LIBRARY, MEDIAPIPE, LITERT_2, LITERT_1):
        if runtime in runtimes:
            for name in RUNTIME_CONTRACTS[runtime]:
                if name in known:
                    wanted.append(name)
                else:
                    notes.append(f"{runtime} found, but this liteship has no {name!r} contract to lint with")
    chosen = tuple(dict.fromkeys(wanted))
    if not chosen:
        notes.append("no runtime library liteship knows was found: name the app's contract with --contract")
    return chosen, notes
