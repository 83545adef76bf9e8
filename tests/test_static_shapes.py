"""liteship.converter.static_shapes: the postprocess outputs' real static shapes in the flatbuffer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from liteship.converter.static_shapes import static_output_shapes
from liteship.errors import ConversionProblem
from liteship.tflite_inspect import inspect_model
from liteship.types import OutputRole
from tests.fixtures.tiny_ssd import (
    CONVERTER_PORTS,
    SyntheticSpec,
    _zip_of,
    build_synthetic_postprocess_tflite,
    image_model,
    repack,
)

PORT_PORTS = (0, 1, 2, 3)
SHAPES = {OutputRole.BOXES: (1, 10, 4), OutputRole.CLASSES: (1, 10), OutputRole.SCORES: (1, 10), OutputRole.COUNT: (1,)}


def converter_like(data: bytes) -> bytes:
    """The postprocess outputs as the TFLite converter stores them: shape [], has_rank true,
    no shape_signature (what CompiledModel sizes 4-byte buffers from)."""

    def edit(model: Any) -> None:
        sg = model.subgraphs[0]
        for index in sg.outputs:
            sg.tensors[index].shape, sg.tensors[index].hasRank, sg.tensors[index].shapeSignature = [], True, None

    return repack(data, edit)


def stored_shapes(data: bytes) -> dict[OutputRole, tuple[tuple[int, ...], tuple[int, ...]]]:
    from tensorflow_lite_support.metadata import schema_py_generated as schema

    info = inspect_model(data)
    sg = schema.Model.GetRootAs(data, 0).Subgraphs(0)
    found = {}
    for role in SHAPES:
        t = sg.Tensors(info.postprocess[0].tensor_for(role))
        found[role] = (_ints(t.ShapeAsNumpy()), _ints(t.ShapeSignatureAsNumpy()))
    return found


def _ints(value: Any) -> tuple[int, ...]:
    """The generated ``...AsNumpy`` accessors return 0 for an absent vector."""
    return tuple(int(v) for v in value) if isinstance(value, np.ndarray) else ()


def run(data: bytes, image: np.ndarray) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]


@pytest.mark.parametrize("ports", [PORT_PORTS, CONVERTER_PORTS], ids=["port-order", "converter-order"])
def test_stores_the_shapes_prepare_computes_in_either_output_order(ports: tuple[int, ...]) -> None:
    before = converter_like(image_model("uint8", ports=ports, max_detections=10))
    assert {r: s[0] for r, s in stored_shapes(before).items()} == {r: () for r in SHAPES}
    after = static_output_shapes(before)
    assert stored_shapes(after) == {role: (shape, shape) for role, shape in SHAPES.items()}
    # what readers see: the output list in the same order, each with its static shape
    assert [(t.index, t.name) for t in inspect_model(after).outputs] == [(t.index, t.name) for t in inspect_model(before).outputs]
    assert [SHAPES[r] for r in inspect_model(after).output_roles] == [t.shape for t in inspect_model(after).outputs]


def written(data: bytes, outputs: list[np.ndarray]) -> dict[OutputRole, bytes]:
    """The bytes the op writes: rows past ``count`` are never written (arena garbage that
    differs between two runs of the same model)."""
    by_role = dict(zip(inspect_model(data).output_roles, outputs))
    n = int(by_role[OutputRole.COUNT][0])
    return {role: (value if role is OutputRole.COUNT else value[0, :n]).tobytes() for role, value in by_role.items()}


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_interpreter_outputs_are_bit_identical(dtype: str) -> None:
    before = converter_like(image_model(dtype, ports=CONVERTER_PORTS))
    after = static_output_shapes(before)
    rng = np.random.default_rng(3)
    detected = []
    for _ in range(4):
        image = (rng.integers(0, 256, (1, 4, 4, 3)).astype(np.uint8) if dtype == "uint8"
                 else rng.normal(0.0, 1.0, (1, 4, 4, 3)).astype(np.float32))
        old, new = run(before, image), run(after, image)
        assert [a.shape for a in new] == [(1, 10), (1, 10, 4), (1,), (1, 10)]
        assert written(after, new) == written(before, old)
        detected.append(int(dict(zip(inspect_model(after).output_roles, new))[OutputRole.COUNT][0]))
    assert max(detected) > 0  # the comparison covers written detections


def test_only_the_tensors_vector_entries_change_in_the_original_bytes() -> None:
    before = converter_like(image_model("uint8"))
    after = static_output_shapes(before)
    changed = [i for i, (x, y) in enumerate(zip(before, after[: len(before)])) if x != y]
    assert len(after) > len(before)
    # 4 uint32 entries of subgraph 0's tensors vector (each offset change touches <= 4 bytes)
    assert changed and len({i // 4 for i in changed}) <= 4
    info_before, info_after = inspect_model(before), inspect_model(after)
    assert (info_after.inputs, info_after.signatures, info_after.op_counts, info_after.metadata_names) == (
        info_before.inputs, info_before.signatures, info_before.op_counts, info_before.metadata_names)


def test_is_idempotent() -> None:
    once = static_output_shapes(converter_like(image_model("float32")))
    assert static_output_shapes(once) == once


def test_n_is_max_detections_times_max_classes_per_detection() -> None:
    from flatbuffers import flexbuffers

    def two_classes_per_box(model: Any) -> None:
        op = model.subgraphs[0].operators[-1]
        options = flexbuffers.Loads(bytes(op.customOptions))
        options["max_classes_per_detection"] = 2
        op.customOptions = list(flexbuffers.Dumps(options))

    data = repack(converter_like(build_synthetic_postprocess_tflite(SyntheticSpec(max_detections=4))), two_classes_per_box)
    shapes = stored_shapes(static_output_shapes(data))
    assert shapes[OutputRole.BOXES] == ((1, 8, 4), (1, 8, 4)) and shapes[OutputRole.COUNT] == ((1,), (1,))


def test_refuses_a_model_with_associated_files() -> None:
    """Appending after the zip of associated files would hide the zip from its readers."""
    with_labels = converter_like(build_synthetic_postprocess_tflite(SyntheticSpec(tflite_metadata=True))) + _zip_of(("labelmap.txt",))
    with pytest.raises(ConversionProblem, match="associated files"):
        static_output_shapes(with_labels)


@pytest.mark.tf
def test_converted_model_keeps_static_shapes_through_metadata(tmp_path: Path) -> None:
    """The real converter's output (shape []), in port order, then tflite-support's metadata
    writer (which re-serialises the model): shapes stay, outputs stay bit-identical."""
    from liteship.converter import metadata, reorder
    from liteship.types import DEFAULT_NORMALIZATION, OutputOrder
    from tests.fixtures.tiny_ssd import IMAGE_SIZE, build_tiny_postprocess_tflite

    converted = build_tiny_postprocess_tflite(tmp_path, num_classes=3, max_detections=5)
    assert all(t.shape == () for t in inspect_model(converted).outputs)
    ordered = reorder.reorder_outputs(converted, OutputOrder.PORT)
    final = metadata.write_metadata(static_output_shapes(ordered), DEFAULT_NORMALIZATION, "a\nb\nc\n")
    assert [t.shape for t in inspect_model(final).outputs] == [(1, 5, 4), (1, 5), (1, 5), (1,)]
    image = np.random.default_rng(0).uniform(-1, 1, (1, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(run(ordered, image), run(final, image)))
