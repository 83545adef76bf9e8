"""Gates of `liteship run`: built-in defaults, overridden by a TOML file, then by CLI flags.

```toml
[accuracy]
max_map50_drop = 0.02      # largest mAP@0.5 drop of a variant below fp32
min_map50 = 0.5            # minimum mAP@0.5 of every variant

[lint]
contracts = ["bundled-app", "task-library", "mediapipe", "litert-compiled"]

[parity.int8]              # any field of liteship.validation.gates.Tolerance
box_encodings_max_rel = 0.3
min_recall = 0.8

[sanity]
min_score = 0.3            # a model must make at least one detection scoring this high

[skips]
allow = ["lint.task-library.*"]   # gating checks that may be skipped (could not run here)
```
Unknown sections or keys are refused (a typo must not silently disable a gate). The judge
(:mod:`liteship.validation.judge`) applies these limits.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liteship.errors import UsageProblem
from liteship.types import Variant
from liteship.validation.contracts import DEFAULT_GATING
from liteship.validation.contracts import NAMES as CONTRACT_NAMES


@dataclass(frozen=True)
class Tolerance:
    """Per-variant parity limits (any field can be set from a gates file). Head limits are
    scale-aware: relative to the reference tensor's range, and as PSNR in dB; the absolute
    errors are always reported and judged only when a cap is set. Why each number is what
    it is: docs/parity.md."""

    #: max |diff| / range of the reference box encodings; None = reported, not judged (the
    #: 8-bit variants: the worst of 10^5..10^8 elements grows with their number, docs/parity.md)
    box_encodings_max_rel: float | None
    box_encodings_min_psnr_db: float  # 20 log10(range / RMSE)
    class_scores_max_rel: float | None
    class_scores_min_psnr_db: float
    min_recall: float  # matched / (matched + misses)
    min_precision: float  # matched / (matched + extras)
    min_class_agreement: float
    min_mean_iou: float
    max_mean_score_delta: float
    #: scores closer than this are a tie (NMS or the threshold may pick either side)
    score_tie: float
    #: optional absolute caps (box-coder units / score units); None = reported, not judged
    box_encodings_max_abs: float | None = None
    class_scores_max_abs: float | None = None


#: fp32 runs the same float graph (operation order differs); fp16 keeps 11 bits of mantissa;
#: dynamic range and int8 quantize to 8 bits. Derivation of every number: docs/parity.md.
TOLERANCES: dict[Variant, Tolerance] = {
    Variant.FP32: Tolerance(1e-3, 60.0, 1e-3, 60.0, 0.98, 0.98, 0.98, 0.98, 0.005, 1e-3),
    Variant.FP16: Tolerance(0.05, 35.0, 0.05, 35.0, 0.95, 0.95, 0.97, 0.95, 0.02, 0.02),
    # 8-bit variants: no per-element limit by default (PSNR and the detections judge them); the
    # worst single element of a correct full-size int8 model reached 0.54 of the range
    Variant.DYNAMIC: Tolerance(None, 20.0, None, 25.0, 0.85, 0.85, 0.90, 0.80, 0.08, 0.08),
    Variant.INT8: Tolerance(None, 15.0, None, 20.0, 0.80, 0.80, 0.85, 0.80, 0.10, 0.10),
    # fp32 weights (fp16: the looser of this and FP16's, liteship/validation/gpu_parity.py);
    # detections as MediaPipe decodes them: its own NMS, boxes in whole pixels
    Variant.GPU: Tolerance(1e-3, 60.0, 1e-3, 60.0, 0.95, 0.95, 0.97, 0.90, 0.01, 1e-3),
}


@dataclass(frozen=True)
class Gates:
    max_map50_drop: float = 0.02
    min_map50: float | None = None
    contracts: tuple[str, ...] = DEFAULT_GATING
    tolerances: dict[Variant, Tolerance] = field(default_factory=lambda: dict(TOLERANCES))
    #: detections.any: at least one detection with at least this score on the validation images
    min_score: float = 0.3
    #: fnmatch patterns of gating check ids that may be skipped (could not run) without failing
    allow_skip: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_map50_drop": self.max_map50_drop,
            "min_map50": self.min_map50,
            "contracts": list(self.contracts),
            "tolerances": {v.value: dataclasses.asdict(t) for v, t in self.tolerances.items()},
            "min_score": self.min_score,
            "allow_skip": list(self.allow_skip),
        }


def _number(path: Path, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageProblem(f"{path}: {where} must be a number, found {value!r}")
    return float(value)


def _table(path: Path, where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageProblem(f"{path}: {where} must be a table ([section] with key = value lines), found {value!r}")
    return value


def _unknown(path: Path, where: str, keys: set[str], allowed: set[str]) -> None:
    extra = sorted(keys - allowed)
    if extra:
        raise UsageProblem(f"{path}: unknown key(s) {extra} in {where}; allowed: {sorted(allowed)}")


def load(path: Path, base: Gates | None = None) -> Gates:
    """Gates from a TOML file on top of ``base`` (default: the built-in gates)."""
    gates = base or Gates()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageProblem(f"--gates {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageProblem(f"--gates {path} is not valid TOML: {exc}") from None
    except OSError as exc:  # a folder, no permission
        raise UsageProblem(f"--gates {path} cannot be read ({exc.strerror or exc}); give a .toml file") from None
    _unknown(path, "the file", set(data), {"accuracy", "lint", "parity", "sanity", "skips"})
    acc = _table(path, "[accuracy]", data.get("accuracy", {}))
    _unknown(path, "[accuracy]", set(acc), {"max_map50_drop", "min_map50"})
    changes: dict[str, Any] = {}
    for key in ("max_map50_drop", "min_map50"):
        if key in acc:
            value = _number(path, f"accuracy.{key}", acc[key])
            if not 0.0 <= value <= 1.0:  # mAP is a fraction, as --max-map50-drop / --min-map50 enforce
                raise UsageProblem(f"{path}: accuracy.{key} must be in [0, 1] (mAP is a fraction), found {value}")
            changes[key] = value
    lint = _table(path, "[lint]", data.get("lint", {}))
    _unknown(path, "[lint]", set(lint), {"contracts"})
    if "contracts" in lint:
        names = lint["contracts"]
        if not isinstance(names, list) or any(n not in CONTRACT_NAMES for n in names):
            raise UsageProblem(f"{path}: lint.contracts must be a list of {list(CONTRACT_NAMES)}, found {names!r}")
        changes["contracts"] = tuple(names)
    parity = _table(path, "[parity]", data.get("parity", {}))
    _unknown(path, "[parity]", set(parity), {v.value for v in Variant})
    tolerances = dict(gates.tolerances)
    fields = {f.name for f in dataclasses.fields(Tolerance)}
    for name, table in parity.items():
        table = _table(path, f"[parity.{name}]", table)
        _unknown(path, f"[parity.{name}]", set(table), fields)
        variant = Variant(name)
        values = {k: _number(path, f"parity.{name}.{k}", v) for k, v in table.items()}
        tolerances[variant] = dataclasses.replace(tolerances[variant], **values)
    changes["tolerances"] = tolerances
    sanity = _table(path, "[sanity]", data.get("sanity", {}))
    _unknown(path, "[sanity]", set(sanity), {"min_score"})
    if "min_score" in sanity:
        value = _number(path, "sanity.min_score", sanity["min_score"])
        if not 0.0 < value <= 1.0:
            raise UsageProblem(f"{path}: sanity.min_score must be in (0, 1] (a detection score), found {value}")
        changes["min_score"] = value
    skips = _table(path, "[skips]", data.get("skips", {}))
    _unknown(path, "[skips]", set(skips), {"allow"})
    if "allow" in skips:
        allow = skips["allow"]
        if not isinstance(allow, list) or not all(isinstance(a, str) and a for a in allow):
            raise UsageProblem(f"{path}: skips.allow must be a list of check ids (fnmatch patterns), found {allow!r}")
        changes["allow_skip"] = tuple(allow)
    return dataclasses.replace(gates, **changes)
