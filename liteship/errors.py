"""One exception hierarchy; every class carries its documented exit code."""

from __future__ import annotations


class LiteshipError(Exception):
    """Base of every error liteship reports to the user (never with a traceback)."""

    exit_code = 1
    #: short, stable identifier used in report.json and --json output
    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageProblem(LiteshipError):
    """Bad command-line arguments (conflicting flags, missing files, bad output folder)."""

    exit_code = 2
    kind = "usage"


class EnvironmentProblem(LiteshipError):
    """The installation is broken (a dependency missing or incompatible)."""

    exit_code = 3
    kind = "environment"


class ConfigProblem(LiteshipError):
    """pipeline.config is unreadable or describes a model that cannot go to TFLite."""

    exit_code = 10
    kind = "config"


class LabelMapProblem(LiteshipError):
    """label_map.pbtxt unreadable, ids not starting at 1, duplicates, count mismatch."""

    exit_code = 11
    kind = "label_map"


class CheckpointProblem(LiteshipError):
    """Checkpoint missing, unreadable, or not matching the model built from the config."""

    exit_code = 12
    kind = "checkpoint"


class ModelInputProblem(LiteshipError):
    """A SavedModel / frozen graph / .tflite given as input is not what it must be."""

    exit_code = 13
    kind = "model_input"


class CalibrationProblem(LiteshipError):
    """No usable calibration images for int8 (the other variants are still produced)."""

    exit_code = 14
    kind = "calibration"


class TFLiteFileProblem(LiteshipError):
    """A .tflite file is missing, unreadable, truncated, or not a TFLite flatbuffer."""

    exit_code = 15
    kind = "tflite_file"


class GroundTruthProblem(LiteshipError):
    """Validation ground truth (Pascal VOC XML, CSV) unreadable or inconsistent with its images."""

    exit_code = 16
    kind = "ground_truth"


class ExportProblem(LiteshipError):
    """The OD API export failed."""

    exit_code = 20
    kind = "export"


class ConversionProblem(LiteshipError):
    """The TFLite converter failed or produced a model that breaks the contract."""

    exit_code = 21
    kind = "conversion"


class MetadataProblem(LiteshipError):
    """Writing or reading back TFLite metadata failed."""

    exit_code = 22
    kind = "metadata"


class Interrupted(LiteshipError):
    exit_code = 130
    kind = "interrupted"


class ParityFailed(LiteshipError):
    """A variant's outputs differ from the desktop reference beyond its tolerances."""

    exit_code = 31
    kind = "parity"


class AccuracyGateFailed(LiteshipError):
    """A variant's mAP is below the minimum or dropped too far below fp32."""

    exit_code = 32
    kind = "accuracy"


class LintFailed(LiteshipError):
    """`liteship lint`: a model breaks at least one named app contract."""

    exit_code = 30
    kind = "lint"


class DeviceParityFailed(LiteshipError):
    """`deploy`: what the device computed differs from the desktop run beyond tolerances."""

    exit_code = 33
    kind = "device_parity"


class BenchmarkProblem(LiteshipError):
    """`liteship bench`: a measurement could not be made (the others are still written)."""

    exit_code = 50
    kind = "bench"


class DeviceProblem(LiteshipError):
    """Base of every device-side failure (all exit codes 40-49)."""

    exit_code = 40
    kind = "device"


class DeviceConnectionProblem(DeviceProblem):
    """No such device, connection refused, or the connection dropped."""

    exit_code = 40
    kind = "device_connection"


class DeviceAuthProblem(DeviceProblem):
    """The device refused our adb key (unauthorized: accept the prompt on the phone)."""

    exit_code = 41
    kind = "device_auth"


class DeviceStorageProblem(DeviceProblem):
    """A push failed on the device: storage full, read-only or permission denied."""

    exit_code = 42
    kind = "device_storage"


class DeviceAppProblem(DeviceProblem):
    """The validation app is not installed, failed to install, or died without a result."""

    exit_code = 43
    kind = "device_app"


class DeviceTimeout(DeviceProblem):
    """The device did not produce a result in time."""

    exit_code = 44
    kind = "device_timeout"


class DeviceResultProblem(DeviceProblem):
    """The result file pulled from the device is corrupt or breaks the protocol schema."""

    exit_code = 45
    kind = "device_result"
