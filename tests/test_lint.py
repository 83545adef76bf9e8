"""`liteship lint`: contracts as data, a corpus of broken models each failing its named check.

Models are built in pure Python (tests/fixtures/tiny_ssd.py + the schema's object API): an
image input [1,4,4,3] -> (DEQUANTIZE) -> RESHAPE -> SPLIT -> TFLite_Detection_PostProcess.
Metadata is written with tflite-support's object-detector writer. No TensorFlow except the
one GPU-analyzer test (marked ``tf``).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from liteship import tflsupport
from liteship.cli import main
from liteship.converter.metadata import write_metadata
from liteship.errors import LintFailed, TFLiteFileProblem
from liteship.types import Verdict
from liteship.types import Normalization
from liteship.validation import contracts as C
from liteship.validation import lint
from tests.fixtures.tiny_ssd import CONVERTER_PORTS, SyntheticSpec, build_synthetic_postprocess_tflite, image_model, repack

IMAGE_SIZE = 4  # 4x4x3 = 48 values = 6 anchors x 4 + 6 x (3 + 1)
NORM = Normalization(mean=(127.5,), std=(127.5,))
PORT_ORDER = (0, 1, 2, 3)


def labels(n: int = 3) -> str:
    return "".join(f"class_{i}\n" for i in range(n))


def with_metadata(model: bytes, *, n_labels: int = 3, label_name: str = "labelmap.txt") -> bytes:
    if label_name == "labelmap.txt":
        return write_metadata(model, NORM, labels(n_labels))
    writer = tflsupport.object_detector_writer()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / label_name
        path.write_text(labels(n_labels))
        return bytes(writer.MetadataWriter.create_for_inference(bytearray(model), [127.5], [127.5], [str(path)]).populate())


def add_flex_op(model: bytes) -> bytes:
    from tensorflow_lite_support.metadata import schema_py_generated as schema

    def edit(m: Any) -> None:
        sg = m.subgraphs[0]
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode, code.version = "FlexNonMaxSuppressionV5", 1
        m.operatorCodes.append(code)
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.buffer = "flex_out", [1], schema.TensorType.FLOAT32, 0
        sg.tensors.append(tensor)
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = len(m.operatorCodes) - 1, [0], [len(sg.tensors) - 1]
        sg.operators.append(op)

    return repack(model, edit)


def bump_op_version(model: bytes, op: str, version: int) -> bytes:
    from tensorflow_lite_support.metadata import schema_py_generated as schema

    def edit(m: Any) -> None:
        for code in m.operatorCodes:
            if code.builtinCode == getattr(schema.BuiltinOperator, op):
                code.version = version

    return repack(model, edit)


def with_input_quantization(model: bytes, scale: float, zero_point: int) -> bytes:
    from tensorflow_lite_support.metadata import schema_py_generated as schema

    def edit(m: Any) -> None:
        params = schema.QuantizationParametersT()
        params.scale, params.zeroPoint = [scale], [zero_point]
        m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]].quantization = params

    return repack(model, edit)


#: what a converter calibrating on ResNet-FPN's normalized images gives its uint8 input
RESNET_NORM = Normalization(mean=(123.68, 116.779, 103.939), std=(1.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def good() -> bytes:
    """Port order, uint8 input, metadata with labelmap.txt (3 labels, 3 classes), N=10."""
    return with_metadata(image_model("uint8"))


def verdicts(result: lint.LintResult, contract: str) -> dict[str, str]:
    return {ch.id: ch.verdict for ch in result.contracts[contract].checks}


def failed(result: lint.LintResult, contract: str) -> set[str]:
    return set(result.contracts[contract].failed())


def run_cli(tmp_path: Path, model: bytes, *args: str, capsys: Any = None) -> tuple[int, Any]:
    path = tmp_path / "model.tflite"
    path.write_bytes(model)
    code = main(["lint", str(path), "--no-gpu", "--no-runtime", "--json", *args])
    out = json.loads(capsys.readouterr().out) if capsys is not None else None
    return code, out


# --- contracts are data ---------------------------------------------------------------


def test_contract_table() -> None:
    assert C.NAMES == ("bundled-app", "task-library", "litert-sample", "legacy-detect", "mediapipe", "litert-compiled")
    assert C.BY_NAME["task-library"].max_results == 3 and C.BY_NAME["litert-sample"].max_results == 5
    assert C.BY_NAME["litert-sample"].label_file == "labelmap.txt"
    assert "int8" not in C.BY_NAME["task-library"].input_dtypes
    # op table: monotonic runtimes, and the pins resolve
    for op, mins in C.MIN_RUNTIME_FOR_OP_VERSION.items():
        keys = [C.version_key(m) for m in mins]
        assert keys == sorted(keys), op
    assert C.max_supported_version("CONV_2D", "2.11.0") == 6
    assert C.max_supported_version("CONV_2D", "2.4.0") == 5
    assert C.max_supported_version("NOT_AN_OP", "2.4.0") is None


# --- the good model: no false alarms ------------------------------------------------------


def test_good_model_passes_every_contract(good: bytes) -> None:
    result = lint.lint_bytes(good)
    for name in C.NAMES:
        assert failed(result, name) == set(), (name, result.contracts[name].to_dict())
    assert result.ok
    v = verdicts(result, "task-library")
    for cid in ("input.count", "input.shape", "input.dtype", "outputs.count", "outputs.roles", "outputs.names",
                "postprocess.op", "ops.flex", "ops.versions", "metadata.present", "labels.file", "labels.count",
                "postprocess.max_detections"):
        assert v[cid] == Verdict.PASS, cid
    # not requested (gpu=False, no task check): n/a, never a pass
    assert v["gpu.compatibility"] == Verdict.NA and v["task_library.load"] == Verdict.NA
    assert verdicts(result, "litert-sample")["outputs.order"] == Verdict.PASS
    # legacy app: 4x4 input is not its 300x300 -> a warning, not a failure
    shape = next(ch for ch in result.contracts["legacy-detect"].checks if ch.id == "input.shape")
    assert shape.verdict == Verdict.PASS and shape.message.startswith("warning:")


def test_good_model_cli_exit_0_and_json(good: bytes, tmp_path: Path, capsys: Any) -> None:
    code, out = run_cli(tmp_path, good, capsys=capsys)
    assert code == 0
    assert set(out["contracts"]) == set(C.NAMES)
    assert out["model"].endswith("model.tflite")
    for c in out["contracts"].values():
        assert c["verdict"] == "pass"
        assert {"id", "verdict", "expected", "found", "message", "fix"} <= set(c["checks"][0])


def test_uint8_input_quantization_is_judged_against_the_normalization_metadata() -> None:
    """The good model's (q - 128) * 2/255 for (q - 127.5) / 127.5 is off by 0.2 % of the range:
    a pass; a pixel input (scale 1, zero point 0, metadata mean 0 / std 1) is exact; the
    per-tensor quantization of ResNet-FPN's normalized image is off by 7.7 % on channel 2."""
    def check(model: bytes) -> Any:
        result = lint.lint_bytes(model, ("task-library", "mediapipe"))
        found = {name: next(ch for ch in r.checks if ch.id == "input.quantization") for name, r in result.contracts.items()}
        assert found["task-library"].verdict == found["mediapipe"].verdict
        return found["task-library"]

    demo_like = check(with_metadata(image_model("uint8")))
    assert demo_like.verdict == Verdict.PASS and demo_like.found["max_error_of_range"] == pytest.approx(0.5 / 255, abs=1e-4)
    pixels = check(write_metadata(with_input_quantization(image_model("uint8"), 1.0, 0), Normalization((0.0,), (1.0,)),
                                  labels()))
    assert pixels.verdict == Verdict.PASS and pixels.found["max_error_of_range"] == 0
    wrong = check(write_metadata(with_input_quantization(image_model("uint8"), 1.0657, 113), RESNET_NORM, labels()))
    assert wrong.verdict == Verdict.FAIL and "per-channel" in wrong.message and wrong.fix
    assert wrong.found["max_error_of_range"] == pytest.approx(
        max(abs(1.0657 * (q - 113) - (q - m)) for q in (0, 255) for m in RESNET_NORM.mean) / 255, abs=1e-4)
    # not judged where an app does not copy bytes into a quantized input, or nothing says what is expected
    assert check(with_metadata(image_model("float32"))).verdict == Verdict.NA
    assert check(with_metadata(image_model("int8"))).verdict == Verdict.NA
    assert check(image_model("uint8")).verdict == Verdict.NA  # no metadata


def test_float_model_with_normalization_passes_name_contracts() -> None:
    result = lint.lint_bytes(with_metadata(image_model("float32")), ("task-library", "bundled-app", "legacy-detect"))
    assert result.ok, {n: r.failed() for n, r in result.contracts.items()}


# --- the broken corpus ----------------------------------------------------------------------


CORPUS = {
    # name: (builder, {contract: check ids that must fail}, contracts that must pass)
    "converter_order": (
        lambda: with_metadata(image_model("uint8", ports=CONVERTER_PORTS)),
        {"litert-sample": {"outputs.order"}, "legacy-detect": {"outputs.order"}},
        ("task-library", "bundled-app"),
    ),
    "no_metadata": (
        lambda: image_model("uint8"),
        {"task-library": {"metadata.present", "outputs.names", "labels.file"},
         "bundled-app": {"metadata.present"}, "litert-sample": {"metadata.present", "labels.file"}},
        ("legacy-detect",),
    ),
    "float_without_normalization": (
        lambda: image_model("float32"),
        {"task-library": {"input.normalization"}, "bundled-app": {"input.normalization"},
         "litert-sample": {"input.dtype"}},
        ("legacy-detect",),
    ),
    "int8_input": (
        lambda: with_metadata(image_model("int8")),
        {"task-library": {"input.dtype"}, "bundled-app": {"input.dtype"}, "litert-sample": {"input.dtype"},
         "legacy-detect": {"input.dtype"}},
        (),
    ),
    "raw_heads": (
        lambda: image_model("float32", postprocess=False),
        {"task-library": {"outputs.count", "outputs.roles", "postprocess.op"},
         "legacy-detect": {"outputs.count", "outputs.order", "postprocess.op"}},
        (),
    ),
    "flex_op": (
        lambda: add_flex_op(image_model("uint8")),
        {name: {"ops.flex"} for name in C.NAMES},
        (),
    ),
    "too_few_labels": (
        lambda: with_metadata(image_model("uint8"), n_labels=2),
        {"task-library": {"labels.count"}, "litert-sample": {"labels.count"}, "bundled-app": {"labels.count"}},
        ("legacy-detect",),
    ),
    "labels_misnamed": (
        lambda: with_metadata(image_model("uint8"), label_name="labels.txt"),
        {"litert-sample": {"labels.file"}, "bundled-app": {"labels.file"}},
        ("task-library", "legacy-detect"),
    ),
    "n3_below_five": (
        lambda: with_metadata(image_model("uint8", max_detections=3)),
        {"litert-sample": {"postprocess.max_detections"}, "legacy-detect": {"postprocess.max_detections"}},
        ("task-library",),
    ),
    "uint8_input_misreads_pixels": (  # one per-tensor quantization for a per-channel normalization
        lambda: write_metadata(with_input_quantization(image_model("uint8"), 1.0657, 113), RESNET_NORM, labels()),
        {name: {"input.quantization"} for name in C.NAMES},
        (),
    ),
    "op_version_too_new": (  # RESHAPE v2 is newer than the 2.11 table: unverified (pass) for LiteRT 2.16
        lambda: with_metadata(bump_op_version(image_model("uint8"), "RESHAPE", 2)),
        {"task-library": {"ops.versions"}, "legacy-detect": {"ops.versions"}},
        ("bundled-app", "litert-sample"),
    ),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_broken_model_fails_the_named_check(case: str, tmp_path: Path, capsys: Any) -> None:
    build, must_fail, must_pass = CORPUS[case]
    model = build()
    result = lint.lint_bytes(model)
    for contract, ids in must_fail.items():
        assert ids <= failed(result, contract), (contract, failed(result, contract))
        code, out = run_cli(tmp_path, model, "--contract", contract, capsys=capsys)
        assert code == LintFailed.exit_code == 30
        assert out["contracts"][contract]["verdict"] == "fail"
        for check in out["contracts"][contract]["checks"]:
            if check["id"] in ids:
                assert check["verdict"] == "fail" and check["fix"], check
    for contract in must_pass:
        assert failed(result, contract) == set(), (contract, failed(result, contract))
        code, _ = run_cli(tmp_path, model, "--contract", contract, capsys=capsys)
        assert code == 0


def test_max_results_option_overrides_contract(good: bytes, tmp_path: Path, capsys: Any) -> None:
    code, out = run_cli(tmp_path, good, "--contract", "task-library", "--max-results", "11", capsys=capsys)
    assert code == 30
    n = next(c for c in out["contracts"]["task-library"]["checks"] if c["id"] == "postprocess.max_detections")
    assert n["verdict"] == "fail" and n["found"] == 10 and n["expected"] == ">= 11"


def test_unreadable_metadata_is_a_failed_check_not_a_crash() -> None:
    model = build_synthetic_postprocess_tflite(SyntheticSpec(output_ports=PORT_ORDER, tflite_metadata=True))
    result = lint.lint_bytes(model, ("task-library",))
    assert "metadata.present" in failed(result, "task-library")


def test_human_output_lists_failures_first_with_fix(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(with_metadata(image_model("uint8", ports=CONVERTER_PORTS)))
    assert main(["lint", str(path), "--no-gpu", "--contract", "litert-sample"]) == 30
    captured = capsys.readouterr()
    body = captured.out.splitlines()
    first = next(i for i, line in enumerate(body) if line.strip().startswith(("fail", "pass", "skip")))
    assert body[first].strip().startswith("fail") and "outputs.order" in body[first]
    assert any("fix:" in line and "--output-order port" in line for line in body)
    assert "litert-sample (outputs.order" in captured.err


# --- files that are not models: exit 15, never a crash -------------------------------------


def test_truncated_and_non_tflite_files_exit_15(good: bytes, tmp_path: Path, capsys: Any) -> None:
    for name, data in (("truncated.tflite", good[: len(good) // 2]), ("text.tflite", b"hello, not a model\n" * 20),
                       ("empty.tflite", b"")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(TFLiteFileProblem):
            lint.lint_file(path)
        assert main(["lint", str(path), "--no-gpu"]) == 15
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.startswith("liteship: error:")
    assert main(["lint", str(tmp_path / "missing.tflite"), "--no-gpu"]) == 15


def test_random_bytes_cli_one_line_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "random.tflite"
    path.write_bytes(bytes(range(256)) * 7 + b"\x9c\x13")
    proc = subprocess.run([sys.executable, "-m", "liteship", "lint", str(path), "--no-gpu"],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert proc.returncode == 15
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("liteship: error:"), proc.stderr
    assert "Traceback" not in proc.stderr


# --- GPU analyzer parsing (fast) and the real analyzer (tf) ---------------------------------


def test_parse_analyzer_output() -> None:
    text = """Subgraph#0 main(T#0) -> [T#1]
  Op#0 CONV_2D(T#0, T#2) -> [T#3]
  Op#1 TFLite_Detection_PostProcess(T#3, T#4, T#5) -> [T#6, T#7, T#8, T#9]
GPU COMPATIBILITY WARNING: Not supported custom op TFLite_Detection_PostProcess
  Op#2 CUMSUM(T#6) -> [T#10]
GPU COMPATIBILITY WARNING: Not supported op CUMSUM

GPU COMPATIBILITY WARNING: Subgraph#0 has GPU delegate compatibility issues at nodes 1, 2 with TFLite runtime version 2.21.0
"""
    g = lint.parse_analyzer(text)
    assert g.incompatible == ("TFLite_Detection_PostProcess", "CUMSUM")
    check = lint._gpu(C.BY_NAME["task-library"], g)
    assert check.verdict == Verdict.PASS and check.message.startswith("warning:")
    strict = C.Contract(**{**C.BY_NAME["task-library"].__dict__, "gpu": C.Gpu.REQUIRED})
    assert lint._gpu(strict, g).verdict == Verdict.FAIL
    assert lint._gpu(strict, lint.GpuResult(True, incompatible=("TFLite_Detection_PostProcess",))).verdict == Verdict.PASS
    assert lint._gpu(strict, lint.GpuResult(False, reason="no TF")).verdict == Verdict.SKIP


@pytest.mark.tf
def test_gpu_analyzer_passes_the_good_model(good: bytes) -> None:
    result = lint.lint_bytes(good, ("task-library",), gpu=True)
    check = next(ch for ch in result.contracts["task-library"].checks if ch.id == "gpu.compatibility")
    assert check.verdict == Verdict.PASS, check


@pytest.mark.tf
def test_gpu_analyzer_in_process_and_in_a_child_agree(tmp_path: Path) -> None:
    """`liteship run` (TensorFlow loaded) analyzes in-process; `lint` in a TF-free child."""
    import tensorflow  # noqa: F401  (loaded: analyze_gpu analyzes in this process)

    from liteship import child

    path = tmp_path / "flex.tflite"
    path.write_bytes(add_flex_op(image_model("uint8")))
    inproc = lint.analyze_gpu(path)
    res = child.run_python(lint.ANALYZER_CHILD, [str(path)], timeout_s=120, marker="LITESHIP_GPU")
    assert res.payload is not None and res.payload["status"] == "ok", res.describe()
    assert inproc.ran and inproc == lint.parse_analyzer(res.payload["text"])


# --- robustness: damaged bytes never crash lint -----------------------------------------------


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_models_give_a_result_or_exit_15(good: bytes, data: Any) -> None:
    model = bytearray(good)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(model) - 1))
        model[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(8, len(model)))
    try:
        result = lint.lint_bytes(bytes(model[:cut]))
    except TFLiteFileProblem:
        return
    assert set(result.contracts) == set(C.NAMES)
