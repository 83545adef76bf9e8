"""LiteRT 2.x ``CompiledModel`` on CPU (ai-edge-litert), the app flow, in a child process.

Exactly what a CompiledModel app does: ``CompiledModel.from_file(path, hardware_accel=CPU)``,
``create_input_buffers(0)``, ``create_output_buffers(0)``, ``write``, ``run_by_index(0, ...)``,
``read``. The buffers are sized from the model's stored shapes: with the shapes the TFLite
converter stores for ``TFLite_Detection_PostProcess`` (``[]``) they hold 1 value each and
the op writes past them (google-ai-edge/LiteRT#9518), which may corrupt the heap or abort
the process -- hence the child. The child reports the buffers' shapes; the parent compares
them with the shapes the op writes, and decodes the outputs like the desktop run does.

Inputs: the desktop run's own preprocessed tensors (TFLiteDetector.preprocess), so any
difference is the runtime's. The runtime's load errors go to native stderr (``Didn't find op
for builtin opcode ...``); the Python exception only says ``Failed to build TFL interpreter``:
both are reported.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import numpy as np

from liteship.tflite_inspect import ModelInfo
from liteship.types import OutputRole
from liteship.validation.runtimes import runner

MARKER = "LITESHIP_COMPILED"
TIMEOUT_S = 120
PER_JOB_S = 30
CONVENTION = "exact"

_CHILD = f"MARKER = {MARKER!r}\n" + runner.CHILD_PRELUDE + r"""
try:
    import numpy as np
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
except Exception as exc:
    env_failure(f"cannot import ai_edge_litert.compiled_model: {type(exc).__name__}: {first_line(exc, 200)}")

def run_one(job, images, inputs):
    t0 = time.perf_counter()
    try:
        model = CompiledModel.from_file(job["model"], hardware_accel=HardwareAccelerator.CPU)
        names = list(model.get_signature_by_index(0).get("outputs", []))
        ins = model.create_input_buffers(0)
        outs = model.create_output_buffers(0)
    except Exception as exc:
        return {"status": "refused", "stage": "load", "kind": type(exc).__name__, "error": first_line(exc),
                "load_s": time.perf_counter() - t0}
    details = [o.get_tensor_details() for o in outs]
    t1 = time.perf_counter()
    per_image = []
    try:
        for x in inputs:
            ins[0].write(np.ascontiguousarray(x))
            model.run_by_index(0, ins, outs)
            per_image.append([o.read(max(1, int(np.prod(d["shape"]))), d["dtype"]).astype(float).tolist()
                              for o, d in zip(outs, details)])
    except Exception as exc:
        return {"status": "failed", "stage": "run", "kind": type(exc).__name__, "error": first_line(exc),
                "load_s": t1 - t0, "output_names": names, "buffers": details}
    return {"status": "ok", "outputs": per_image, "output_names": names, "buffers": details,
            "load_s": t1 - t0, "run_s": time.perf_counter() - t1}

job_loop(run_one)
"""


def available() -> str | None:
    if importlib.util.find_spec("ai_edge_litert") is None:
        return "ai-edge-litert is not installed"
    if importlib.util.find_spec("ai_edge_litert.compiled_model") is None:
        return "this ai-edge-litert has no compiled_model module (LiteRT 2.x needed)"
    return None


def run(jobs: Sequence[runner.Job]) -> list[runner.JobOutcome]:
    return runner.run_jobs(_CHILD, MARKER, jobs, timeout_s=TIMEOUT_S, per_job_s=PER_JOB_S)


def roles_by_buffer(info: ModelInfo, names: Sequence[str]) -> list[OutputRole | None]:
    """The role of each output buffer: buffers follow the signature's output names, which
    map to tensor indices in the model's SignatureDef (subgraph output order without one)."""
    signature = info.signatures[0].outputs if info.signatures else {}
    if names and all(n in signature for n in names):
        by_index = {t.index: r for t, r in zip(info.outputs, info.output_roles)}
        return [by_index.get(signature[n]) for n in names]
    return list(info.output_roles)


def too_small_buffers(info: ModelInfo, payload: dict) -> list[str]:
    """Buffers that hold fewer values than the postprocess op writes into them."""
    from liteship.converter.static_shapes import postprocess_output_shapes

    if len(info.postprocess) != 1:
        return []
    try:
        wanted = postprocess_output_shapes(info.postprocess[0])
    except Exception:  # noqa: BLE001 - options the op cannot run with: not this check's business
        return []
    problems = []
    for role, detail in zip(roles_by_buffer(info, payload.get("output_names", [])), payload.get("buffers", [])):
        if role is None:
            continue
        need, have = int(np.prod(wanted[role])), int(np.prod(detail["shape"])) if detail["shape"] else 1
        if have < need:
            problems.append(f"{role.value}: buffer {detail['shape']} holds {have} values, the op writes "
                            f"{list(wanted[role])} = {need}")
    return problems


def stored_too_small(info: ModelInfo) -> list[str]:
    """:func:`too_small_buffers` for the buffers CompiledModel sizes from the stored output
    shapes (known without running anything)."""
    return too_small_buffers(info, {"output_names": [], "buffers": [{"shape": list(t.shape)} for t in info.outputs]})


def outputs_by_role(info: ModelInfo, payload: dict, image: int) -> dict[OutputRole, np.ndarray]:
    roles = roles_by_buffer(info, payload.get("output_names", []))
    values = payload["outputs"][image]
    return {role: np.asarray(v, dtype=np.float32) for role, v in zip(roles, values) if role is not None}
