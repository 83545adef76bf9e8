"""Self-checks on each converted variant: the converter's contract, measured.

Each returns :class:`liteship.types.Check` records (id, verdict, expected, found, fix);
the pipeline turns failures into a ConversionProblem after writing the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from liteship.types import Check, Verdict
from liteship.tflite_inspect import ModelInfo
from liteship.types import POSTPROCESS_OP, POSTPROCESS_PORT_ORDER, Int8Input, OutputOrder, Variant


def _check(cid: str, ok: bool, expected: Any, found: Any, fix: str = "", message: str = "") -> Check:
    return Check(cid, Verdict.PASS if ok else Verdict.FAIL, expected, found, message, "" if ok else fix)


def static_checks(info: ModelInfo, variant: Variant, order: OutputOrder, int8_input: Int8Input) -> list[Check]:
    post = info.op_counts.get(f"CUSTOM:{POSTPROCESS_OP}", 0)
    flex = sorted(k for k in info.op_counts if k.startswith("FLEX:"))
    checks = [
        _check("postprocess_op", post == 1, 1, post, "export with the TFLite exporter (export_tflite_graph_tf2), not exporter_main_v2"),
        _check("no_flex_ops", not flex, [], flex, "remove TF ops the TFLite runtime lacks (Flex ops need the select-TF runtime)"),
        _check("output_count", len(info.outputs) == 4, 4, len(info.outputs), "the model must end in TFLite_Detection_PostProcess"),
    ]
    roles = [r.value if r is not None else None for r in info.output_roles]
    if order is OutputOrder.PORT:
        want = [r.value for r in POSTPROCESS_PORT_ORDER]
        checks.append(_check("output_order", roles == want, want, roles, "rewrite the output list (liteship --output-order port)"))
    dtype = info.inputs[0].dtype if info.inputs else None
    want_dtype = {Variant.INT8: int8_input.value}.get(variant, "float32")
    checks.append(_check("input_dtype", dtype == want_dtype, want_dtype, dtype, "check the converter's inference_input_type"))
    out_dtypes = sorted({o.dtype for o in info.outputs})
    checks.append(_check("output_dtype", out_dtypes == ["float32"], ["float32"], out_dtypes, "postprocess outputs must stay float32"))
    return checks


def runtime_check(model: bytes, max_detections: int) -> tuple[Check, dict[str, Any]]:
    """Load and invoke with ai-edge-litert (the runtime apps embed) on a mid-grey input."""
    from ai_edge_litert.interpreter import Interpreter

    from liteship import nativelog

    facts: dict[str, Any] = {}
    try:
        with nativelog.captured():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
            interp = Interpreter(model_content=model, num_threads=1)
            interp.allocate_tensors()
            inp = interp.get_input_details()[0]
            if np.issubdtype(inp["dtype"], np.integer):
                value = np.full(inp["shape"], 128 if inp["dtype"] == np.uint8 else 0, dtype=inp["dtype"])
            else:
                value = np.zeros(inp["shape"], dtype=inp["dtype"])
            interp.set_tensor(inp["index"], value)
            interp.invoke()
        shapes = [list(interp.get_tensor(o["index"]).shape) for o in interp.get_output_details()]
        facts["runtime_output_shapes"] = shapes
    except Exception as exc:  # the interpreter raises ValueError/RuntimeError with C++ text
        return _check("litert_runs", False, "loads and runs", f"{type(exc).__name__}: {str(exc)[:300]}",
                      "the model does not run in ai-edge-litert; see the error"), facts
    n_ok = any(len(s) == 3 and s[1] == max_detections for s in shapes) if max_detections else True
    return _check("litert_runs", n_ok, f"runs; boxes [1,{max_detections},4]", shapes,
                  "max_detections of the exported op differs from the export option"), facts
