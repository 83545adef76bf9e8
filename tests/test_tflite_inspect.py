"""liteship.tflite_inspect: reading .tflite files without TensorFlow."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from tests.fixtures.tiny_ssd import (
    CONVERTER_PORTS,
    H_SCALE,
    IMAGE_SIZE,
    NMS_IOU_THRESHOLD,
    NMS_SCORE_THRESHOLD,
    UNKNOWN_BUILTIN_CODE,
    W_SCALE,
    X_SCALE,
    Y_SCALE,
    SyntheticSpec,
    build_synthetic_postprocess_tflite,
    build_tiny_postprocess_tflite,
    line_anchors,
    repack,
)

from liteship.errors import LiteshipError, TFLiteFileProblem
from liteship.tflite_inspect import POSTPROCESS_OP_NAME, ModelInfo, inspect_file, inspect_model
from liteship.types import POSTPROCESS_PORT_ORDER, OutputRole

CONVERTER_ROLES = (OutputRole.SCORES, OutputRole.BOXES, OutputRole.COUNT, OutputRole.CLASSES)
POSTPROCESS_TENSORS = (3, 4, 5, 6)


@pytest.fixture(scope="module")
def synthetic() -> bytes:
    return build_synthetic_postprocess_tflite()


@pytest.fixture(scope="module")
def synthetic_extras() -> bytes:
    spec = SyntheticSpec(extra_ops=True, tflite_metadata=True, associated_files=("labels.txt", "extra.txt"))
    return build_synthetic_postprocess_tflite(spec)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_tiny_postprocess_tflite(tmp_path_factory.mktemp("tiny_ssd"), num_classes=3, max_detections=5, seed=0)


def assert_tflite_problem(data: bytes) -> TFLiteFileProblem:
    with pytest.raises(LiteshipError) as caught:
        inspect_model(data, source="model.tflite")
    problem = caught.value
    assert type(problem) is TFLiteFileProblem
    assert problem.exit_code == 15 and problem.kind == "tflite_file"
    assert "\n" not in problem.message and problem.message.startswith("model.tflite ")
    return problem


class TestSyntheticModel:
    def test_inputs_and_outputs_in_subgraph_order(self, synthetic: bytes) -> None:
        info = inspect_model(synthetic)
        assert [(t.position, t.index, t.name) for t in info.inputs] == [
            (0, 0, "box_encodings"),
            (1, 1, "class_predictions"),
        ]
        assert [t.index for t in info.outputs] == [3 + port for port in CONVERTER_PORTS]
        assert [t.position for t in info.outputs] == [0, 1, 2, 3]
        assert [t.shape for t in info.outputs] == [(1, 5), (1, 5, 4), (1,), (1, 5)]
        assert {t.dtype for t in info.inputs + info.outputs} == {"float32"}
        assert all(t.quantization is None for t in info.inputs + info.outputs)

    def test_ops_and_postprocess(self, synthetic: bytes) -> None:
        info = inspect_model(synthetic)
        assert info.op_counts == {POSTPROCESS_OP_NAME: 1}
        assert info.op_versions == ((POSTPROCESS_OP_NAME, 1),)
        (op,) = info.postprocess
        assert op.inputs == (0, 1, 2)
        assert op.outputs == POSTPROCESS_TENSORS
        assert [op.tensor_for(role) for role in POSTPROCESS_PORT_ORDER] == list(POSTPROCESS_TENSORS)
        assert info.output_roles == CONVERTER_ROLES

    def test_postprocess_options(self, synthetic: bytes) -> None:
        options = inspect_model(synthetic).postprocess[0].options
        assert (options.max_detections, options.num_classes, options.max_classes_per_detection) == (5, 3, 1)
        assert options.detections_per_class == 100
        assert options.use_regular_nms is False
        assert (options.nms_score_threshold, options.nms_iou_threshold) == (NMS_SCORE_THRESHOLD, NMS_IOU_THRESHOLD)
        assert (options.y_scale, options.x_scale, options.h_scale, options.w_scale) == (
            Y_SCALE,
            X_SCALE,
            H_SCALE,
            W_SCALE,
        )
        assert options.other == {}

    def test_signature_and_metadata(self, synthetic: bytes) -> None:
        info = inspect_model(synthetic)
        (signature,) = info.signatures
        assert signature.key == "serving_default" and signature.subgraph_index == 0
        assert signature.inputs == {"box_encodings": 0, "class_predictions": 1}
        assert signature.outputs == {"output_0": 6, "output_1": 5, "output_2": 4, "output_3": 3}
        assert info.metadata_names == ("min_runtime_version",)
        assert info.min_runtime_version == "1.14.0"
        assert not info.has_tflite_metadata and info.associated_files == ()
        assert (info.schema_version, info.subgraph_count) == (3, 1)

    def test_flex_unknown_builtin_and_versions(self, synthetic_extras: bytes) -> None:
        info = inspect_model(synthetic_extras)
        assert info.op_counts == {
            "ADD": 2,
            f"BUILTIN_{UNKNOWN_BUILTIN_CODE}": 1,
            POSTPROCESS_OP_NAME: 1,
            "FLEX:NonMaxSuppressionV5": 1,
        }
        assert ("ADD", 2) in info.op_versions
        assert info.flex_ops == ("FLEX:NonMaxSuppressionV5",)
        assert info.custom_ops == (POSTPROCESS_OP_NAME,)

    def test_quantized_input_with_shape_signature(self, synthetic_extras: bytes) -> None:
        image = inspect_model(synthetic_extras).inputs[2]
        assert (image.position, image.name, image.dtype) == (2, "image", "uint8")
        assert image.shape == (1, -1, -1, 3)
        assert image.quantization is not None
        assert image.quantization.per_tensor == (0.5, 128)

    def test_tflite_metadata_and_associated_files(self, synthetic_extras: bytes) -> None:
        info = inspect_model(synthetic_extras)
        assert info.has_tflite_metadata
        assert info.metadata_names == ("min_runtime_version", "TFLITE_METADATA")
        assert info.associated_files == ("labels.txt", "extra.txt")

    def test_to_dict_is_json(self, synthetic_extras: bytes) -> None:
        as_dict = inspect_model(synthetic_extras).to_dict()
        assert json.loads(json.dumps(as_dict)) == as_dict
        assert as_dict["output_roles"] == [role.value for role in CONVERTER_ROLES]
        assert as_dict["postprocess"][0]["options"]["max_detections"] == 5
        assert as_dict["inputs"][2]["quantization"] == {"scales": [0.5], "zero_points": [128], "quantized_dimension": 0}

    def test_roles_follow_the_listed_outputs(self) -> None:
        info = inspect_model(build_synthetic_postprocess_tflite(SyntheticSpec(output_ports=(3, 0))))
        assert info.output_roles == (OutputRole.COUNT, OutputRole.BOXES)

    def test_without_postprocess_op_no_roles(self, synthetic: bytes) -> None:
        def rename_custom_op(model: Any) -> None:
            model.operatorCodes[0].customCode = "MyPostProcess"

        info = inspect_model(repack(synthetic, rename_custom_op))
        assert info.op_counts == {"CUSTOM:MyPostProcess": 1}
        assert info.postprocess == ()
        assert info.output_roles == (None, None, None, None)

    def test_inspect_file(self, synthetic: bytes, tmp_path: Path) -> None:
        path = tmp_path / "model.tflite"
        path.write_bytes(synthetic)
        assert inspect_file(path) == inspect_model(synthetic)


def test_import_does_not_load_tensorflow() -> None:
    code = (
        "import sys, liteship.tflite_inspect, liteship.converter.reorder\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


class TestBadBytes:
    def test_empty(self) -> None:
        assert "empty" in assert_tflite_problem(b"").message

    @pytest.mark.parametrize("length", [1, 3, 7])
    def test_shorter_than_header(self, length: int) -> None:
        assert "'TFL3'" in assert_tflite_problem(b"\x1c\0\0\0TFL3"[:length]).message

    def test_wrong_identifier(self, synthetic: bytes) -> None:
        problem = assert_tflite_problem(synthetic[:4] + b"TFL2" + synthetic[8:])
        assert "expected file identifier 'TFL3' at bytes 4-8, found b'TFL2'" in problem.message

    def test_zip_file(self) -> None:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("model.tflite", b"not really")
        problem = assert_tflite_problem(archive.getvalue())
        assert problem.hint is not None and "zip" in problem.hint

    @pytest.mark.parametrize("root", [0, 4, 2**31, 2**32 - 1])
    def test_root_offset_outside_file(self, synthetic: bytes, root: int) -> None:
        assert_tflite_problem(root.to_bytes(4, "little") + synthetic[4:])

    @pytest.mark.parametrize("seed", range(20))
    def test_random_bytes(self, seed: int) -> None:
        rng = random.Random(seed)
        data = bytearray(rng.randbytes(rng.randrange(8, 4096)))
        if seed % 2:
            data[4:8] = b"TFL3"
        assert_tflite_problem(bytes(data))

    @pytest.mark.parametrize("length", [8, 9, 12, 16, 64, 100, 500, 1000, -64, -33])
    def test_truncated(self, synthetic: bytes, length: int) -> None:
        assert_tflite_problem(synthetic[:length])

    @pytest.mark.parametrize("past_end", [1, 1000, 2**31])
    def test_buffer_past_the_end(self, synthetic: bytes, past_end: int) -> None:
        anchors = line_anchors(6).tobytes()
        start = synthetic.index(anchors)
        assert int.from_bytes(synthetic[start - 4 : start], "little") == len(anchors)
        length = len(synthetic) - start + past_end
        data = synthetic[: start - 4] + length.to_bytes(4, "little") + synthetic[start:]
        assert "buffer 1 needs bytes" in assert_tflite_problem(data).message

    def test_every_prefix_fails_or_is_only_missing_padding(self, synthetic_extras: bytes) -> None:
        full = inspect_model(synthetic_extras)
        model_end = synthetic_extras.index(b"PK\x03\x04")
        accepted = []
        for length in range(model_end):
            try:
                info = inspect_model(synthetic_extras[:length])
            except TFLiteFileProblem:
                continue
            assert info.op_counts == full.op_counts and info.postprocess == full.postprocess
            accepted.append(length)
        assert all(length >= model_end - 4 for length in accepted)

    def test_byte_mutations_raise_nothing_else(self, synthetic_extras: bytes) -> None:
        rng = random.Random(0)
        outcomes = {"ok": 0, "problem": 0}
        for _ in range(2000):
            data = bytearray(synthetic_extras)
            for _ in range(rng.choice([1, 2, 8])):
                data[rng.randrange(len(data))] = rng.randrange(256)
            try:
                assert isinstance(inspect_model(bytes(data)), ModelInfo)
                outcomes["ok"] += 1
            except TFLiteFileProblem:
                outcomes["problem"] += 1
        assert outcomes["ok"] > 0 and outcomes["problem"] > 0

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(TFLiteFileProblem, match="no such file"):
            inspect_file(tmp_path / "missing.tflite")

    def test_folder(self, tmp_path: Path) -> None:
        with pytest.raises(TFLiteFileProblem, match="folder"):
            inspect_file(tmp_path)


@pytest.mark.tf
class TestConvertedModel:
    """A model converted by the real TFLite converter, as the OD API TF2 export does it."""

    def test_exactly_one_postprocess_op(self, converted: bytes) -> None:
        info = inspect_model(converted)
        assert info.op_counts[POSTPROCESS_OP_NAME] == 1
        assert len(info.postprocess) == 1
        assert info.op_counts["CONV_2D"] == 4
        assert info.flex_ops == ()

    def test_converter_output_order(self, converted: bytes) -> None:
        info = inspect_model(converted)
        assert info.output_roles == CONVERTER_ROLES
        assert sorted(t.index for t in info.outputs) == sorted(info.postprocess[0].outputs)

    def test_input(self, converted: bytes) -> None:
        (image,) = inspect_model(converted).inputs
        assert (image.shape, image.dtype) == ((1, IMAGE_SIZE, IMAGE_SIZE, 3), "float32")

    def test_options_are_the_requested_ones(self, converted: bytes) -> None:
        options = inspect_model(converted).postprocess[0].options
        assert (options.max_detections, options.num_classes, options.max_classes_per_detection) == (5, 3, 1)
        assert options.use_regular_nms is False
        assert (options.nms_score_threshold, options.nms_iou_threshold) == (NMS_SCORE_THRESHOLD, NMS_IOU_THRESHOLD)
        assert (options.y_scale, options.x_scale, options.h_scale, options.w_scale) == (
            Y_SCALE,
            X_SCALE,
            H_SCALE,
            W_SCALE,
        )

    def test_signature_names_follow_the_reversed_tuple(self, converted: bytes) -> None:
        info = inspect_model(converted)
        (signature,) = info.signatures
        op = info.postprocess[0]
        assert signature.inputs == {"image": info.inputs[0].index}
        expected_roles = (OutputRole.COUNT, OutputRole.SCORES, OutputRole.CLASSES, OutputRole.BOXES)
        assert signature.outputs == {f"output_{k}": op.tensor_for(role) for k, role in enumerate(expected_roles)}

    def test_min_runtime_version(self, converted: bytes) -> None:
        version = inspect_model(converted).min_runtime_version
        assert version is not None and version[0].isdigit()

    @pytest.mark.parametrize("fraction", [0.01, 0.25, 0.5, 0.75, 0.99])
    def test_truncated(self, converted: bytes, fraction: float) -> None:
        assert_tflite_problem(converted[: int(len(converted) * fraction)])
        assert_tflite_problem(converted[:-1])
