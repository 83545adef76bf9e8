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
        #: ``group:check_id`` of the checks behind this error, when a gate raised it
        self.failed_checks: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"kind": self.kind, "exit_code": self.exit_code, "message": self.message}
        if self.hint:
            d["hint"] = self.hint
        if self.failed_checks:
            d["failed_checks"] = list(self.failed_checks)
        return d


class UsageProblem(LiteshipError):
    """Bad command-line arguments (conflicting flags, missing files, bad output folder)."""

    exit_code = 2
    kind = "usage"


class EnvironmentProblem(LiteshipError):
    """The installation is broken (a dependency missing or incompatible), or a gating check
    could not run here (a runtime that cannot start, no images to validate with)."""

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


class InternalError(LiteshipError):
    """A bug: an exception that is not a LiteshipError (reported with exit 1)."""

    exit_code = 1
    kind = "internal"


#: every exit code and what it means: the CLI help, the README and docs/ are tested against it
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "success"),
    (1, "internal error (a bug: rerun with `--debug` and report it)"),
    (2, "usage: bad or conflicting arguments, missing files, unusable `--out`"),
    (3, "environment: a dependency is missing or broken, or a gating check could not run here (`--allow-skip` accepts that)"),
    (10, "pipeline.config refused"),
    (11, "label map refused"),
    (12, "checkpoint missing, corrupt or not matching the config"),
    (13, "`--saved-model` / `--frozen-graph` is not a TFLite-exportable SSD"),
    (14, "int8 refused: no usable calibration images (the other variants were written)"),
    (15, "a .tflite file is unreadable or not a TFLite model"),
    (16, "ground truth (VOC folder / CSV / TFRecord) unreadable or inconsistent"),
    (20, "export failed"),
    (21, "conversion failed, or a converted model failed its checks"),
    (22, "metadata could not be written or verified"),
    (30, "lint: the model breaks an app contract it must satisfy"),
    (31, "parity: a variant differs from the desktop reference beyond its tolerances, or outputs NaN/Inf"),
    (32, "accuracy: a model detects nothing, mAP@0.5 below `--min-map50`, or more than `--max-map50-drop` below fp32"),
    (33, "device parity: what the device computed differs from the desktop run of the same model"),
    (40, "device: not found, connection refused or dropped"),
    (41, "device: our adb key was refused (accept the \"Allow USB debugging?\" prompt on the phone)"),
    (42, "device: storage full, read-only path or permission denied"),
    (43, "device: validation app not installed (pass `--apk`), install failed, or the app died without a result"),
    (44, "device: no result before `--timeout`"),
    (45, "device: the result file is corrupt or breaks the protocol schema"),
    (130, "interrupted"),
)
