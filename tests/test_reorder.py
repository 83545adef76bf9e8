"""liteship.converter.reorder: putting detector outputs in postprocess port order."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from liteship.converter.reorder import reorder_outputs
from liteship.errors import ConversionProblem, TFLiteFileProblem
from liteship.tflite_inspect import inspect_model
from liteship.types import POSTPROCESS_PORT_ORDER, OutputOrder, OutputRole
from tests.fixtures.tiny_ssd import (
    IMAGE_SIZE,
    SyntheticSpec,
    build_synthetic_postprocess_tflite,
    build_tiny_postprocess_tflite,
    repack,
)

#: for the TF2 converter order (scores, boxes, count, classes): old position of new output k
CONVERTER_TO_PORT = (1, 3, 0, 2)


@pytest.fixture(scope="module")
def synthetic() -> bytes:
    return build_synthetic_postprocess_tflite()


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_tiny_postprocess_tflite(tmp_path_factory.mktemp("tiny_ssd"), num_classes=3, max_detections=5, seed=0)


def feeds_for(data: bytes, seed: int = 0) -> dict[int, np.ndarray]:
    """Seeded inputs by tensor index: normal box encodings / images, uniform class scores."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for tensor in inspect_model(data).inputs:
        if tensor.name == "class_predictions":
            feeds[tensor.index] = rng.uniform(0.0, 1.0, tensor.shape).astype(np.float32)
        else:
            feeds[tensor.index] = rng.normal(0.0, 1.0, tensor.shape).astype(np.float32)
    return feeds


def run_by_position(data: bytes, feeds: dict[int, np.ndarray]) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    for index, value in feeds.items():
        interpreter.set_tensor(index, value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]


def run_signature(data: bytes, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=data).get_signature_runner("serving_default")
    return {name: value.copy() for name, value in runner(**inputs).items()}


def signature_inputs(data: bytes, feeds: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
    (signature,) = inspect_model(data).signatures
    return {name: feeds[index] for name, index in signature.inputs.items()}


def changed_offsets(a: bytes, b: bytes) -> list[int]:
    assert len(a) == len(b)
    return [i for i, (x, y) in enumerate(zip(a, b)) if x != y]


def assert_same_outputs_by_tensor(before: bytes, after: bytes, seed: int = 0) -> None:
    feeds = feeds_for(before, seed)
    old = dict(zip((t.index for t in inspect_model(before).outputs), run_by_position(before, feeds)))
    new = run_by_position(after, feeds)
    for tensor, value in zip(inspect_model(after).outputs, new):
        np.testing.assert_array_equal(value, old[tensor.index])


class TestSynthetic:
    def test_port_order(self, synthetic: bytes) -> None:
        info = inspect_model(reorder_outputs(synthetic, OutputOrder.PORT))
        assert info.output_roles == POSTPROCESS_PORT_ORDER
        assert tuple(t.index for t in info.outputs) == info.postprocess[0].outputs

    def test_only_the_outputs_vector_changes(self, synthetic: bytes) -> None:
        changed = changed_offsets(synthetic, reorder_outputs(synthetic, OutputOrder.PORT))
        assert changed and changed[-1] - changed[0] < 16

    @pytest.mark.parametrize("ports", list(itertools.permutations(range(4))))
    def test_every_permutation_ends_in_port_order(self, ports: tuple[int, ...]) -> None:
        data = build_synthetic_postprocess_tflite(SyntheticSpec(output_ports=ports))
        result = reorder_outputs(data, OutputOrder.PORT)
        assert inspect_model(result).output_roles == POSTPROCESS_PORT_ORDER
        assert reorder_outputs(result, OutputOrder.PORT) == result

    def test_idempotent(self, synthetic: bytes) -> None:
        once = reorder_outputs(synthetic, OutputOrder.PORT)
        assert reorder_outputs(once, OutputOrder.PORT) == once

    def test_converter_order_is_a_no_op(self, synthetic: bytes) -> None:
        assert reorder_outputs(synthetic, OutputOrder.CONVERTER) == synthetic

    def test_order_given_as_string(self, synthetic: bytes) -> None:
        assert reorder_outputs(synthetic, "port") == reorder_outputs(synthetic, OutputOrder.PORT)  # type: ignore[arg-type]

    def test_signature_defs_unchanged(self, synthetic: bytes) -> None:
        assert inspect_model(reorder_outputs(synthetic, OutputOrder.PORT)).signatures == inspect_model(synthetic).signatures

    def test_litert_gives_the_same_tensors_at_new_positions(self, synthetic: bytes) -> None:
        result = reorder_outputs(synthetic, OutputOrder.PORT)
        assert_same_outputs_by_tensor(synthetic, result)
        feeds = feeds_for(synthetic)
        old, new = run_by_position(synthetic, feeds), run_by_position(result, feeds)
        for k, old_position in enumerate(CONVERTER_TO_PORT):
            np.testing.assert_array_equal(new[k], old[old_position])
        assert [v.shape for v in new] == [(1, 5, 4), (1, 5), (1, 5), (1,)]

    def test_signature_runner_after_reorder(self, synthetic: bytes) -> None:
        result = reorder_outputs(synthetic, OutputOrder.PORT)
        inputs = signature_inputs(synthetic, feeds_for(synthetic))
        before, after = run_signature(synthetic, inputs), run_signature(result, inputs)
        assert sorted(after) == sorted(before)
        for name, value in before.items():
            np.testing.assert_array_equal(after[name], value)


class TestRefused:
    def test_no_postprocess_op(self, synthetic: bytes) -> None:
        def rename(model: Any) -> None:
            model.operatorCodes[0].customCode = "MyPostProcess"

        with pytest.raises(ConversionProblem, match="expected 1 TFLite_Detection_PostProcess op"):
            reorder_outputs(repack(synthetic, rename), OutputOrder.PORT)

    def test_two_postprocess_ops(self, synthetic: bytes) -> None:
        def duplicate(model: Any) -> None:
            model.subgraphs[0].operators.append(model.subgraphs[0].operators[0])

        with pytest.raises(ConversionProblem, match="found 2"):
            reorder_outputs(repack(synthetic, duplicate), OutputOrder.PORT)

    @pytest.mark.parametrize("ports", [(0, 1, 2), (2, 0, 3, 1, 0)])
    def test_not_four_outputs(self, ports: tuple[int, ...]) -> None:
        data = build_synthetic_postprocess_tflite(SyntheticSpec(output_ports=ports))
        with pytest.raises(ConversionProblem, match=f"expected 4 model outputs, found {len(ports)}"):
            reorder_outputs(data, OutputOrder.PORT)

    def test_outputs_not_from_the_op(self, synthetic: bytes) -> None:
        def swap_in_input(model: Any) -> None:
            subgraph = model.subgraphs[0]
            subgraph.outputs = [0, *(int(i) for i in subgraph.outputs[1:])]

        with pytest.raises(ConversionProblem, match="TFLite_Detection_PostProcess outputs"):
            reorder_outputs(repack(synthetic, swap_in_input), OutputOrder.PORT)

    def test_tflite_metadata_already_written(self) -> None:
        data = build_synthetic_postprocess_tflite(SyntheticSpec(tflite_metadata=True))
        with pytest.raises(ConversionProblem, match="metadata") as caught:
            reorder_outputs(data, OutputOrder.PORT)
        assert caught.value.hint is not None

    def test_tflite_metadata_in_port_order_is_fine(self) -> None:
        data = build_synthetic_postprocess_tflite(SyntheticSpec(tflite_metadata=True, output_ports=(0, 1, 2, 3)))
        assert reorder_outputs(data, OutputOrder.PORT) == data

    @pytest.mark.parametrize("data", [b"", b"PK\x03\x04" + bytes(60), b"\x1c\0\0\0TFL3" + bytes(100)])
    def test_bad_bytes(self, data: bytes) -> None:
        with pytest.raises(TFLiteFileProblem):
            reorder_outputs(data, OutputOrder.PORT)


@pytest.mark.tf
class TestConvertedModel:
    def test_converter_leaves_scores_boxes_count_classes(self, converted: bytes) -> None:
        assert inspect_model(converted).output_roles == (
            OutputRole.SCORES,
            OutputRole.BOXES,
            OutputRole.COUNT,
            OutputRole.CLASSES,
        )

    def test_port_order(self, converted: bytes) -> None:
        result = reorder_outputs(converted, OutputOrder.PORT)
        info = inspect_model(result)
        assert info.output_roles == POSTPROCESS_PORT_ORDER
        assert tuple(t.index for t in info.outputs) == info.postprocess[0].outputs
        changed = changed_offsets(converted, result)
        assert changed and changed[-1] - changed[0] < 16

    def test_idempotent_and_converter_no_op(self, converted: bytes) -> None:
        once = reorder_outputs(converted, OutputOrder.PORT)
        assert reorder_outputs(once, OutputOrder.PORT) == once
        assert reorder_outputs(converted, OutputOrder.CONVERTER) == converted

    @pytest.mark.parametrize("seed", [0, 1])
    def test_litert_gives_the_same_arrays_at_new_positions(self, converted: bytes, seed: int) -> None:
        result = reorder_outputs(converted, OutputOrder.PORT)
        feeds = feeds_for(converted, seed)
        old, new = run_by_position(converted, feeds), run_by_position(result, feeds)
        for k, old_position in enumerate(CONVERTER_TO_PORT):
            np.testing.assert_array_equal(new[k], old[old_position])
        assert [v.shape for v in new] == [(1, 5, 4), (1, 5), (1, 5), (1,)]
        assert 0 <= new[3][0] <= new[2].shape[1]
        assert np.all(np.diff(new[2][0]) <= 0)

    def test_signature_runner_after_reorder(self, converted: bytes) -> None:
        result = reorder_outputs(converted, OutputOrder.PORT)
        image = np.random.default_rng(3).uniform(-1, 1, (1, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
        before, after = run_signature(converted, {"image": image}), run_signature(result, {"image": image})
        assert sorted(after) == ["output_0", "output_1", "output_2", "output_3"]
        for name, value in before.items():
            np.testing.assert_array_equal(after[name], value)
        assert after["output_3"].shape == (1, 5, 4)
