"""The ``mediapipe`` and ``litert-compiled`` contracts: one small model per rule, lint and the
real runtimes agree.

Every model of the corpus (tests/fixtures/consumer_models.py, pure Python) breaks one rule.
For each: lint fails the named check (exit 30) and its fix line carries the runtime's own
words; the same model, loaded in the real MediaPipe ObjectDetector / CompiledModel (one child
per runtime for the whole corpus, shared by the module), is refused with those very words
(or, where the runtime raises nothing, computes other detections than the desktop run).
Good models raise no alarm in any of the six contracts, runtime checks included.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from liteship.cli import main
from liteship.converter.normfold import FOLDED_NORMALIZATION, fold_normalization
from liteship.converter.static_shapes import static_output_shapes
from liteship.types import Verdict
from liteship.validation import contracts as C
from liteship.validation import lint, runtimes
from liteship.validation.runtimes import Outcome, Runtime
from tests.fixtures import consumer_models as M
from tests.fixtures.tiny_ssd import CONVERTER_PORTS, image_model

E = C.MEDIAPIPE_ERRORS
LITERT_REGISTRATION = ("Didn't find op for builtin opcode 'RESHAPE' version '2'. An older version of this builtin "
                       "might be supported. Are you using an old TFLite binary with a newer model?")
TOO_SMALL = "Custom allocation is too small for tensor idx"

#: name: (model, the mediapipe check that fails, MediaPipe's words in its fix line and error
#: (None: MediaPipe loads it and raises nothing), whether MediaPipe refuses it at load)
MEDIAPIPE_CASES: dict[str, tuple[Callable[[], bytes], str, str | None]] = {
    "two_subgraphs": (lambda: M.edit_model(M.good(), M.second_subgraph), "model.subgraphs",
                      E["model.subgraphs"].format(n=2)),
    "no_metadata": (lambda: static_output_shapes(image_model("uint8")), "metadata.present", E["metadata.present"].text),
    "two_inputs": (lambda: M.edit_model(M.good(), M.second_input), "input.count", E["input.count"].text),
    "no_input_metadata": (lambda: M.edit_metadata(M.good(), M.no_input_metadata), "input.metadata",
                          E["input.metadata"].text),
    "input_not_an_image": (lambda: M.edit_metadata(M.good(), M.input_content("FeatureProperties")), "input.content",
                           E["input.content"].format(name="image", type="FeatureProperties")),
    "grayscale": (lambda: M.edit_metadata(M.good(), M.color_space("GRAYSCALE")), "input.content",
                  E["input.color_space"].text),
    "input_rank2": (lambda: M.edit_model(M.good(), M.input_shape([1, 48])), "input.shape", E["input.rank"].text),
    "input_depth1": (lambda: M.edit_model(M.good(), M.input_shape([1, 4, 12, 1])), "input.shape",
                     E["input.shape"].format(b=1, h=4, w=12, d=1)),
    "int8_input": (lambda: M.good("int8"), "input.dtype", E["input.dtype"].format(name="image", type="INT8")),
    "float_no_normalization": (lambda: M.edit_metadata(M.good("float32"), M.normalization(None, None)),
                               "input.normalization", E["input.normalization.missing"].text),
    "normalization_dims": (lambda: M.edit_metadata(M.good("float32"), M.normalization([1.0, 2.0, 3.0], [1.0])),
                           "input.normalization", E["input.normalization.dims"].format(mean=3, std=1)),
    "normalization_two_values": (lambda: M.edit_metadata(M.good("float32"), M.normalization([1.0, 2.0], [1.0, 2.0])),
                                 "input.normalization", E["input.normalization.count"].format(n=2)),
    "normalization_not_a_multiple": (
        lambda: M.edit_model(M.edit_metadata(M.good("float32"), M.normalization([1.0] * 3, [2.0] * 3)),
                             M.input_shape([1, 2, 2, 4])),
        "input.normalization", E["input.normalization.multiple"].text),
    "per_channel": (lambda: M.with_metadata(static_output_shapes(image_model("float32")), M.RESNET_NORM),
                    "input.normalization", E["input.normalization.per_channel"].text),
    "std_zero": (lambda: M.edit_metadata(M.good("float32"), M.normalization([127.5], [0.0])), "input.normalization",
                 E["input.normalization.std_zero"].text),
    "three_outputs": (lambda: M.edit_model(M.good(), M.drop_output), "outputs.count", E["outputs.count"].format(n=3)),
    "int32_output": (lambda: M.edit_model(M.good(), M.output_type(0, "INT32")), "outputs.dtype",
                     E["outputs.dtype"].format(i=0, type="INT32")),
    "one_uint8_output": (lambda: M.edit_model(M.good(), M.output_type(0, "UINT8")), "outputs.dtype",
                         E["outputs.quantized"].format(q=1, n=4)),
    "output_metadata_count": (lambda: M.edit_metadata(M.good(), M.keep_output_metadata(3)), "outputs.metadata_count",
                              E["outputs.metadata_count"].format(n=4, m=3)),
    "raw_heads_without_detector_metadata": (
        lambda: M.edit_metadata(M.with_metadata(image_model("float32", postprocess=False)), M.keep_output_metadata(2)),
        "outputs.form", E["outputs.detector_metadata"].text),
    "no_box_properties": (lambda: M.edit_metadata(M.good(), M.location_content(kind="none")), "location.box_properties",
                          E["location.box_properties.missing"].format(name="location")),
    "feature_box_properties": (lambda: M.edit_metadata(M.good(), M.location_content(kind="FeatureProperties")),
                               "location.box_properties",
                               E["location.box_properties.type"].format(name="location", type="FeatureProperties")),
    "center_boxes": (lambda: M.edit_metadata(M.good(), M.box_type("CENTER")), "location.box_properties",
                     E["location.box_type"].format(type="CENTER")),
    "pixel_boxes": (lambda: M.edit_metadata(M.good(), M.coordinate_type("PIXEL")), "location.box_properties",
                    E["location.coordinate_type"].format(type="PIXEL")),
    "box_index_of_3": (lambda: M.edit_metadata(M.good(), M.box_index([1, 0, 3])), "location.box_properties",
                       E["location.box_index"].format(n=3)),
    "flex_op": (lambda: M.edit_model(M.good(), M.custom_op("FlexNonMaxSuppressionV5")), "ops.flex", C.TFLITE_FLEX_ERROR),
    "unknown_custom_op": (lambda: M.edit_model(M.good(), M.custom_op("MyOp")), "ops.custom",
                          "Encountered unresolved custom op: MyOp."),
    # MediaPipe loads these and raises nothing: it computes other results
    "box_index_transposed": (lambda: M.edit_metadata(M.good(), M.box_index([0, 1, 2, 3])), "location.box_order", None),
    "names_mismatch_converter_order": (lambda: M.edit_metadata(
        M.good(ports=CONVERTER_PORTS), M.output_names(["boxes", "classes", "scores", "count"])), "outputs.names", None),
    "max_detections_2": (lambda: M.good(max_detections=2), "postprocess.max_detections", None),
}

#: name: (model, the litert-compiled check that fails, LiteRT's words in its fix line and in
#: what CompiledModel reports, or None when the runtime raises nothing)
LITERT_CASES: dict[str, tuple[Callable[[], bytes], str, str | None]] = {
    "empty_output_shapes": (lambda: M.edit_model(M.good(), M.empty_output_shapes), "outputs.static_shape", TOO_SMALL),
    "stored_n_too_small": (lambda: M.edit_model(M.good(), M.stored_n(5)), "outputs.static_shape", TOO_SMALL),
    "reshape_v2": (lambda: M.edit_model(M.good(), M.op_version("RESHAPE", 2)), "ops.versions", LITERT_REGISTRATION),
    "unknown_custom_op": (lambda: M.edit_model(M.good(), M.custom_op("MyOp")), "ops.versions",
                          "Encountered unresolved custom op: MyOp."),
    "flex_op": (lambda: M.edit_model(M.good(), M.custom_op("FlexNonMaxSuppressionV5")), "ops.flex", C.TFLITE_FLEX_ERROR),
    # the app convention (LiteRT samples read outputs by index): CompiledModel itself raises nothing
    "converter_order": (lambda: M.good(ports=CONVERTER_PORTS), "outputs.order", None),
    "max_detections_2": (lambda: M.good(max_detections=2), "postprocess.max_detections", None),
}

GOOD: dict[str, Callable[[], bytes]] = {
    "uint8": lambda: M.good(),
    "float32": lambda: M.good("float32"),
    "per_channel_folded": lambda: M.with_metadata(
        static_output_shapes(fold_normalization(image_model("float32"), M.IMAGENET_NORM)), FOLDED_NORMALIZATION),
    # warnings, not failures
    "names_mismatch_port_order": lambda: M.edit_metadata(M.good(), M.output_names(["boxes", "classes", "scores", "count"])),
    "stored_n_larger": lambda: M.edit_model(M.good(), M.stored_n(20)),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("consumer_corpus")
    paths = {}
    for prefix, table in (("mp", MEDIAPIPE_CASES), ("lc", LITERT_CASES)):
        for name, (build, _, _) in table.items():
            paths[f"{prefix}:{name}"] = root / f"{prefix}_{name}.tflite"
            paths[f"{prefix}:{name}"].write_bytes(build())
    for name, build in GOOD.items():
        paths[f"good:{name}"] = root / f"good_{name}.tflite"
        paths[f"good:{name}"].write_bytes(build())
    return paths


def seeded_images(count: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (4, 4, 3)).astype(np.uint8) for _ in range(count)]


@pytest.fixture(scope="module")
def runs(corpus: dict[str, Path]) -> dict[str, dict[Runtime, runtimes.RuntimeRun]]:
    """Every corpus model in the three real runtimes: one child per runtime (~10 s in all)."""
    result = runtimes.check(corpus, list(Runtime), seeded_images())
    for key, by_runtime in result.items():
        for run in by_runtime.values():
            assert run.outcome is not Outcome.UNAVAILABLE, f"{key}: {run.message}"
    return result


def lint_cli(path: Path, contract: str, capsys: Any, *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["lint", str(path), "--no-gpu", "--json", "--contract", contract, *args])
    return code, json.loads(capsys.readouterr().out)


def check_of(out: dict[str, Any], contract: str, cid: str) -> dict[str, Any]:
    return next(c for c in out["contracts"][contract]["checks"] if c["id"] == cid)


@pytest.mark.parametrize("case", sorted(MEDIAPIPE_CASES))
def test_mediapipe_rule(case: str, corpus: dict[str, Path], runs: dict[str, Any], capsys: Any) -> None:
    _, cid, words = MEDIAPIPE_CASES[case]
    path = corpus[f"mp:{case}"]
    code, out = lint_cli(path, "mediapipe", capsys, "--no-runtime")
    assert code == 30, out["contracts"]["mediapipe"]
    check = check_of(out, "mediapipe", cid)
    assert check["verdict"] == "fail" and check["fix"], check
    run = runs[f"mp:{case}"][Runtime.MEDIAPIPE]
    if words is not None:
        assert words in check["fix"], check["fix"]
        # the real MediaPipe refuses the same model with the same words
        assert run.outcome is Outcome.REFUSED, run
        assert words in (run.error or ""), (words, run.error)
    # lint with the runtime run: the runtime's verdict joins the rules
    result = lint.lint_file(path, ("mediapipe",), runtime_runs=runs[f"mp:{case}"])
    failed = set(result.contracts["mediapipe"].failed())
    assert cid in failed
    if words is not None:
        assert "mediapipe.load" in failed
        load = next(c for c in result.contracts["mediapipe"].checks if c.id == "mediapipe.load")
        assert words in load.fix


def test_mediapipe_runs_the_silent_failures_and_sees_them(runs: dict[str, Any]) -> None:
    """A transposed box index: MediaPipe loads it and returns other boxes than the desktop run."""
    run = runs["mp:box_index_transposed"][Runtime.MEDIAPIPE]
    assert run.outcome is Outcome.OK and run.agreement is not None
    checks = {c.id: c for c in runtimes.judge(run, Runtime.MEDIAPIPE)}
    assert checks["mediapipe.detections"].verdict == Verdict.FAIL, run.agreement
    assert run.agreement.matched < run.agreement.desktop


@pytest.mark.parametrize("case", sorted(LITERT_CASES))
def test_litert_compiled_rule(case: str, corpus: dict[str, Path], runs: dict[str, Any], capsys: Any) -> None:
    _, cid, words = LITERT_CASES[case]
    path = corpus[f"lc:{case}"]
    code, out = lint_cli(path, "litert-compiled", capsys, "--no-runtime")
    assert code == 30, out["contracts"]["litert-compiled"]
    check = check_of(out, "litert-compiled", cid)
    assert check["verdict"] == "fail" and check["fix"], check
    run = runs[f"lc:{case}"][Runtime.COMPILED_MODEL]
    if words is not None:
        assert words in check["fix"], check["fix"]
        assert not run.ran, run
        assert words in (run.error or ""), (words, run.error)
        load = {c.id: c for c in runtimes.judge(run, Runtime.COMPILED_MODEL)}["compiled_model.load"]
        assert load.verdict == Verdict.FAIL and words in load.fix
    else:
        assert run.ran, run


def test_compiled_model_with_converter_shapes_is_a_failed_load_not_a_pass(runs: dict[str, Any]) -> None:
    """Shape [] outputs (what the converter stores): CompiledModel's buffers hold 1 value each;
    whether or not the process survives, the check fails with LiteRT's words."""
    run = runs["lc:empty_output_shapes"][Runtime.COMPILED_MODEL]
    assert run.outcome in (Outcome.FAILED, Outcome.CRASHED), run
    assert TOO_SMALL in (run.error or "")


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_models_raise_no_alarm(name: str, corpus: dict[str, Path], runs: dict[str, Any]) -> None:
    by_runtime = runs[f"good:{name}"]
    result = lint.lint_file(corpus[f"good:{name}"], C.NAMES, runtime_runs=by_runtime)
    gating = ["bundled-app", "task-library", "mediapipe", "litert-compiled"]
    if name == "names_mismatch_port_order":  # liteship's own app finds outputs by name only (ModelRoles.java)
        assert result.contracts["bundled-app"].failed() == ["outputs.names"]
        gating.remove("bundled-app")
    for contract in gating:
        assert result.contracts[contract].failed() == [], (contract, result.contracts[contract].to_dict())
    for runtime, run in by_runtime.items():
        assert run.outcome is Outcome.OK, run
        a = run.agreement
        assert a is not None and a.desktop > 0 and a.runtime == a.desktop == a.matched == a.same_class, (runtime, a)
        assert a.min_iou is not None and a.min_iou >= runtimes.MIN_IOU


def test_task_library_name_mismatch_in_port_order_is_a_warning(corpus: dict[str, Path], runs: dict[str, Any]) -> None:
    """The Task Library falls back to index order on a name mismatch: a warning, and it really
    loads and detects the same as the desktop."""
    result = lint.lint_file(corpus["good:names_mismatch_port_order"], ("task-library", "mediapipe"),
                            runtime_runs=runs["good:names_mismatch_port_order"])
    for contract in ("task-library", "mediapipe"):
        names = next(c for c in result.contracts[contract].checks if c.id == "outputs.names")
        assert names.verdict == Verdict.PASS and names.message.startswith("warning:"), names
        assert "You don't seem to be matching tensor names" in names.message
    assert runs["good:names_mismatch_port_order"][Runtime.TASK_LIBRARY].agreement.matched > 0


def test_lint_runs_the_runtimes_by_default(corpus: dict[str, Path], capsys: Any) -> None:
    """`liteship lint` without --no-runtime: CompiledModel really runs (a child) and its words
    reach the fix line; exit 30."""
    code, out = lint_cli(corpus["lc:reshape_v2"], "litert-compiled", capsys)
    assert code == 30
    load = check_of(out, "litert-compiled", "compiled_model.load")
    assert load["verdict"] == "fail" and LITERT_REGISTRATION in load["fix"]
    assert out["runtimes"]["compiled-model"]["outcome"] == "refused"


def test_docs_list_every_contract_and_every_mediapipe_rule() -> None:
    """docs/contracts.md names each contract with its source, and each MediaPipe rule with its text."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "contracts.md").read_text()
    for c in C.CONTRACTS:
        assert f"| `{c.name}` |" in doc and c.source in doc, c.name
    for key, rule in C.MEDIAPIPE_ERRORS.items():
        assert f"| `{key}` | {rule.text.replace('|', chr(92) + '|')} | `{rule.source}` |" in doc, key
