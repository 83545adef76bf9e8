"""`liteship apk`: models stored and aligned, 64-bit native libraries 16 KB-aligned, contracts.

The archives are built here (tests/fixtures/apk_files.py): zips with a binary manifest, the
TF-free tiny SSDs of test_device_apprunner.py, and shared objects linked by Debian's clang/lld
for the Android targets with -z max-page-size=16384 or 4096 (CI must install clang and lld;
under CI=true a missing clang fails instead of skipping), or minimal ELF files with chosen
PT_LOAD alignments (no toolchain needed).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from liteship.apk.archive import glob_matches, open_archive
from liteship.apk.check import check_apk
from liteship.apk.elf import read_elf
from liteship.cli import main
from liteship.errors import ApkFileProblem
from tests.fixtures.apk_files import Member, aab, apk, clang_library, minimal_elf
from tests.test_device_apprunner import tiny_models  # noqa: F401


@pytest.fixture(scope="module")
def port_model() -> bytes:
    """uint8 input, outputs in the op's port order (boxes, classes, scores, count), metadata with
    labelmap.txt: what the litert-sample contract (outputs read by index) accepts."""
    from liteship.converter.metadata import write_metadata
    from liteship.types import Normalization
    from tests.fixtures.tiny_ssd import image_model

    return write_metadata(image_model("uint8", max_detections=8), Normalization(mean=(127.5,), std=(127.5,)),
                          "circle\nsquare\ntriangle\n")


@pytest.fixture(scope="module")
def clang_libs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], bytes]:
    out = tmp_path_factory.mktemp("clang")
    return {(abi, page): clang_library(out, abi, page) for abi in ("arm64-v8a", "x86_64") for page in (16384, 4096)}


def checks_of(result: Any) -> dict[str, Any]:
    return {c.id: c for c in result.checks}


def run_cli(path: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["apk", str(path), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_clang_libraries_have_the_alignment_they_were_linked_with(clang_libs) -> None:
    for (abi, page), data in clang_libs.items():
        facts = read_elf(data)
        assert facts.machine == ("EM_AARCH64" if abi == "arm64-v8a" else "EM_X86_64")
        assert facts.load_alignments and set(facts.load_alignments) == {page}, (abi, page, facts)


def test_a_16kb_ready_apk_with_stored_models_passes(port_model, clang_libs, tmp_path, capsys) -> None:
    path = apk(tmp_path / "ok.apk", [
        Member("assets/model.tflite", port_model, align=4),
        Member("lib/arm64-v8a/libtensorflowlite_jni.so", clang_libs["arm64-v8a", 16384], align=16384),
        Member("lib/x86_64/libtensorflowlite_jni.so", clang_libs["x86_64", 16384], align=16384),
        Member("lib/armeabi-v7a/libtensorflowlite_jni.so", b"32-bit: not checked", stored=False),
    ])
    code, doc = run_cli(path, capsys=capsys)
    assert code == 0, [c for c in doc["checks"] if c["verdict"] == "fail"]
    assert doc["status"] == "pass" and doc["kind"] == "apk" and doc["package"] == "com.example.detector"
    assert doc["contracts"] == ["litert-sample"] and doc["contracts_source"] == "inferred"
    assert [r["runtime"] for r in doc["runtimes"]] == ["LiteRT 1.x / TFLite"]
    assert doc["other_abis"] == ["armeabi-v7a"]
    ids = {c["id"]: c for c in doc["checks"]}
    assert ids["apk.model.assets/model.tflite.stored"]["verdict"] == "pass"
    assert ids["apk.model.assets/model.tflite.aligned"]["verdict"] == "pass"
    assert ids["apk.model.assets/model.tflite.lint.litert-sample"]["verdict"] == "pass"
    for abi in ("arm64-v8a", "x86_64"):
        assert ids[f"apk.lib.{abi}/libtensorflowlite_jni.so.16kb"]["found"] == [16384] * 3
        assert ids[f"apk.lib.{abi}/libtensorflowlite_jni.so.zipalign"]["verdict"] == "pass"


def test_a_4kb_library_is_named_with_its_artifact_and_known_problem(tiny_models, clang_libs, tmp_path, capsys) -> None:
    path = apk(tmp_path / "task.apk", [
        Member("assets/model.tflite", tiny_models["int8"].read_bytes(), align=4),
        Member("lib/arm64-v8a/libtask_vision_jni.so", clang_libs["arm64-v8a", 4096], stored=False),
        Member("lib/x86_64/libtask_vision_jni.so", clang_libs["x86_64", 16384], stored=False),
    ])
    assert main(["apk", str(path)]) == 30
    out, err = capsys.readouterr()
    assert "apk.lib.arm64-v8a/libtask_vision_jni.so.16kb" in err
    result = check_apk(path)
    ids = checks_of(result)
    bad = ids["apk.lib.arm64-v8a/libtask_vision_jni.so.16kb"]
    assert bad.verdict == "fail" and bad.found == [4096] * 3
    assert "org.tensorflow:tensorflow-lite-task-vision" in bad.message and "4096 bytes" in bad.message
    assert "0.4.4" in bad.fix and "tasks-vision" in bad.fix
    assert ids["apk.lib.x86_64/libtask_vision_jni.so.16kb"].verdict == "pass"
    assert ids["apk.lib.arm64-v8a/libtask_vision_jni.so.zipalign"].verdict == "n/a"  # compressed: extracted
    assert result.facts.contracts == ("task-library",)
    assert "FAIL" in out and "known problem: libtask_vision_jni.so" in out


@pytest.mark.parametrize("alignments, ok", [((16384, 16384), True), ((65536,), True), ((16384, 4096), False),
                                            ((4096,), False)])
def test_every_pt_load_segment_counts(tmp_path, alignments, ok) -> None:
    path = apk(tmp_path / "a.apk", [Member("lib/arm64-v8a/libmine.so", minimal_elf("arm64-v8a", alignments),
                                           align=16384)])
    check = checks_of(check_apk(path))["apk.lib.arm64-v8a/libmine.so.16kb"]
    assert check.verdict == ("pass" if ok else "fail") and check.found == list(alignments)
    if not ok:
        assert "origin unknown to liteship" in check.message


def test_a_stored_library_off_a_16kb_boundary_fails_zipalign(tmp_path) -> None:
    path = apk(tmp_path / "a.apk", [Member("lib/x86_64/libmine.so", minimal_elf("x86_64", (16384,)), align=4096,
                                           misalign=4096)])
    ids = checks_of(check_apk(path))
    assert ids["apk.lib.x86_64/libmine.so.16kb"].verdict == "pass"
    assert ids["apk.lib.x86_64/libmine.so.zipalign"].verdict == "fail"
    assert "AGP >= 8.5.1" in ids["apk.lib.x86_64/libmine.so.zipalign"].fix


def test_a_library_that_is_not_elf_fails(tmp_path) -> None:
    path = apk(tmp_path / "a.apk", [Member("lib/arm64-v8a/libbroken.so", b"not an ELF file at all")])
    check = checks_of(check_apk(path))["apk.lib.arm64-v8a/libbroken.so.16kb"]
    assert check.verdict == "fail" and "not a readable ELF" in check.message


def test_a_compressed_model_fails_and_names_no_compress(port_model, tmp_path, capsys) -> None:
    path = apk(tmp_path / "c.apk", [Member("assets/detect.tflite", port_model, stored=False)])
    code, doc = run_cli(path, "--contract", "litert-sample", capsys=capsys)
    assert code == 30 and doc["status"] == "fail" and doc["contracts_source"] == "--contract"
    ids = {c["id"]: c for c in doc["checks"]}
    stored = ids["apk.model.assets/detect.tflite.stored"]
    assert stored["verdict"] == "fail" and stored["found"] == "compressed"
    assert 'noCompress += "tflite"' in stored["fix"]
    assert ids["apk.model.assets/detect.tflite.aligned"]["verdict"] == "n/a"
    assert ids["apk.model.assets/detect.tflite.lint.litert-sample"]["verdict"] == "pass"  # only storage failed


def test_a_stored_model_off_a_4_byte_boundary_fails(port_model, tmp_path) -> None:
    path = apk(tmp_path / "u.apk", [Member("assets/detect.tflite", port_model, align=4, misalign=2)])
    check = checks_of(check_apk(path, ["litert-sample"]))["apk.model.assets/detect.tflite.aligned"]
    assert check.verdict == "fail" and check.found % 4 == 2 and "zipalign" in check.fix


def test_a_model_that_breaks_its_contract_fails_the_apk(tiny_models, tmp_path, capsys) -> None:
    """The float model in an app whose runtime says litert-sample (uint8 input, outputs by index)."""
    path = apk(tmp_path / "f.apk", [
        Member("assets/fp32.tflite", tiny_models["fp32"].read_bytes(), align=4),
        Member("lib/arm64-v8a/liblitert_jni.so", minimal_elf("arm64-v8a", (16384,)), align=16384),
    ])
    code, doc = run_cli(path, capsys=capsys)
    assert code == 30 and doc["contracts"] == ["litert-sample", "litert-compiled"]
    lint = next(c for c in doc["checks"] if c["id"] == "apk.model.assets/fp32.tflite.lint.litert-sample")
    assert lint["verdict"] == "fail" and "input.dtype" in " ".join(lint["found"])
    model = doc["models"][0]
    assert model["lint"]["contracts"]["litert-sample"]["verdict"] == "fail"  # the whole lint result is kept
    assert [r["runtime"] for r in doc["runtimes"]] == ["LiteRT 2.x"]


def test_a_litert2_apk_fails_a_model_without_static_output_shapes(tiny_models, tmp_path, capsys) -> None:
    """LiteRT 2.x means CompiledModel: the model whose postprocess outputs are stored as [] fails
    litert-compiled (its buffers would be 1 value each, LiteRT#9518); under LiteRT 1.x it is not asked."""
    model = Member("assets/m.tflite", tiny_models["no_static_shapes"].read_bytes(), align=4)
    litert2 = apk(tmp_path / "2.apk", [model, Member("lib/arm64-v8a/libLiteRt.so", minimal_elf("arm64-v8a", (16384,)),
                                                     align=16384)])
    code, doc = run_cli(litert2, capsys=capsys)
    assert code == 30 and "litert-compiled" in doc["contracts"]
    lint = doc["models"][0]["lint"]["contracts"]["litert-compiled"]
    static = next(c for c in lint["checks"] if c["id"] == "outputs.static_shape")
    assert static["verdict"] == "fail" and "TFLite_Detection_PostProcess" in static["message"]
    litert1 = apk(tmp_path / "1.apk", [model, Member("lib/arm64-v8a/libtensorflowlite_jni.so",
                                                     minimal_elf("arm64-v8a", (16384,)), align=16384)])
    assert check_apk(litert1).facts.contracts == ("litert-sample",)


def test_liteships_own_app_is_linted_as_the_bundled_app(tiny_models, tmp_path) -> None:
    path = apk(tmp_path / "demo.apk", [Member("assets/model.tflite", tiny_models["int8"].read_bytes(), align=4)],
               package="dev.liteship.demo")
    result = check_apk(path)
    assert result.facts.contracts == ("bundled-app",)
    assert "apk.model.assets/model.tflite.lint.bundled-app" in checks_of(result)


def test_no_runtime_and_no_contract_is_a_skip_not_a_pass(tiny_models, tmp_path, capsys) -> None:
    path = apk(tmp_path / "n.apk", [Member("assets/m.tflite", tiny_models["int8"].read_bytes(), align=4)])
    result = check_apk(path)
    lint = checks_of(result)["apk.model.assets/m.tflite.lint"]
    assert lint.verdict == "skip" and "--contract" in lint.message
    assert result.facts.contracts == ()
    code, doc = run_cli(path, capsys=capsys)
    assert code == 3 and doc["status"] == "skip"  # the judge's skip policy: could not run is never a pass
    assert main(["apk", str(path), "--allow-skip", "apk.model.*.lint", "--quiet"]) == 0


def test_runtime_loads_the_model_in_the_contracts_runtimes(tiny_models, tmp_path, capsys) -> None:
    """--runtime: a LiteRT 2.x app's model without static output shapes, run in the real CompiledModel
    (a child process), fails compiled_model.load naming the too-small buffers; MediaPipe loads it."""
    path = apk(tmp_path / "r.apk", [
        Member("assets/m.tflite", tiny_models["no_static_shapes"].read_bytes(), align=4),
        Member("lib/arm64-v8a/libLiteRt.so", minimal_elf("arm64-v8a", (16384,)), align=16384)])
    code, doc = run_cli(path, "--contract", "litert-compiled", "--contract", "mediapipe", "--runtime", capsys=capsys)
    assert code == 30
    lint = doc["models"][0]["lint"]["contracts"]
    load = next(c for c in lint["litert-compiled"]["checks"] if c["id"] == "compiled_model.load")
    assert load["verdict"] == "fail" and "TFLite_Detection_PostProcess" in load["message"]
    assert next(c for c in lint["mediapipe"]["checks"] if c["id"] == "mediapipe.load")["verdict"] == "pass"
    without = check_apk(path, ["litert-compiled"])  # without --runtime the load is n/a, never a pass
    assert next(c for c in without.facts.models[0].lint["contracts"]["litert-compiled"]["checks"]
                if c["id"] == "compiled_model.load")["verdict"] == "n/a"


def test_an_app_bundle_uses_bundletools_uncompressed_globs(tiny_models, tmp_path) -> None:
    members = [Member("base/assets/model.tflite", tiny_models["int8"].read_bytes(), stored=False),
               Member("base/lib/arm64-v8a/libmediapipe_tasks_vision_jni.so", minimal_elf("arm64-v8a", (4096,)),
                      stored=False)]
    kept = check_apk(aab(tmp_path / "kept.aab", members, ("**.tflite",)), ["bundled-app"])
    ids = checks_of(kept)
    assert kept.facts.kind == "aab"
    assert ids["apk.model.base/assets/model.tflite.stored"].verdict == "pass"
    assert ids["apk.model.base/assets/model.tflite.aligned"].verdict == "n/a"
    assert ids["apk.lib.arm64-v8a/libmediapipe_tasks_vision_jni.so.16kb"].verdict == "fail"
    compressed = checks_of(check_apk(aab(tmp_path / "zipped.aab", members), ["bundled-app"]))
    assert compressed["apk.model.base/assets/model.tflite.stored"].verdict == "fail"


@pytest.mark.parametrize("pattern, path, ok", [("**.tflite", "assets/a/b.tflite", True), ("**/*.tflite", "x.tflite", True),
                                               ("assets/*.tflite", "assets/a/b.tflite", False),
                                               ("res/raw/**", "res/raw/m.tflite", True)])
def test_bundletool_globs(pattern, path, ok) -> None:
    assert glob_matches(pattern, path) is ok


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04truncated"])
def test_an_unreadable_file_exits_15(tmp_path, capsys, content) -> None:
    path = tmp_path / "bad.apk"
    path.write_bytes(content)
    assert main(["apk", str(path)]) == 15
    assert "not a readable zip" in capsys.readouterr().err


def test_a_zip_that_is_no_app_and_a_missing_file_exit_15(tmp_path, capsys) -> None:
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(ApkFileProblem, match="neither an APK"):
        open_archive(tmp_path / "plain.zip")
    assert main(["apk", str(tmp_path / "nope.apk")]) == 15
    assert "does not exist" in capsys.readouterr().err


def test_out_writes_the_report(tiny_models, tmp_path, capsys) -> None:
    path = apk(tmp_path / "ok.apk", [Member("assets/m.tflite", tiny_models["int8"].read_bytes(), align=4)])
    assert main(["apk", str(path), "--contract", "task-library", "--out", str(tmp_path / "report"), "--quiet"]) == 0
    doc = json.loads((tmp_path / "report" / "apk-report.json").read_text())
    assert doc["schema"] == "liteship.apk" and doc["status"] == "pass"
    assert capsys.readouterr().out == ""
