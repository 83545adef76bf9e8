"""Measure an APK / App Bundle, then judge it (``liteship apk``).

Measured (:func:`inspect_archive`, JSON-serialisable :class:`ApkFacts`):

* every ``.tflite``: how it is stored, where its data starts, its lint result per contract
  (``liteship.validation.lint.lint_bytes``; contracts named, or inferred from the runtimes);
* every native library under ``lib/arm64-v8a`` and ``lib/x86_64`` (the 64-bit ABIs a 16 KB
  page device runs): the ``p_align`` of each PT_LOAD segment, how it is stored, where its
  data starts;
* the runtimes found (:mod:`liteship.apk.runtimes`).

Judged (:func:`judge`, pure): one check per model and library (ids below), the failing ones
naming the file, the artifact it comes from and the fix.

=========================================  ===============================================
``apk.models``                             at least one .tflite (n/a: none in the archive)
``apk.model.<path>.stored``                ZIP_STORED (AAB: an uncompressed_glob matches it)
``apk.model.<path>.aligned``               data offset % 4 == 0 (mmap + flatbuffer, see below)
``apk.model.<path>.lint.<contract>``       the contract's lint verdict
``apk.lib.<abi>/<name>.16kb``              every PT_LOAD p_align >= 16384
``apk.lib.<abi>/<name>.zipalign``          stored: data offset % 16384 == 0 (n/a: compressed)
=========================================  ===============================================

Why 4 bytes: LiteRT refuses a model buffer that is not 4-byte aligned ("The supplied buffer is
not 4-bytes aligned", tflite/converter/allocation.cc; 16 would be better, it notes), and a
memory-mapped asset's address is the page-aligned mapping plus the data's offset in the APK,
so the offset decides. zipalign (and AGP) align uncompressed entries to 4 bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liteship.apk import runtimes as rt
from liteship.apk.archive import Archive, Entry, glob_matches, open_archive
from liteship.apk.elf import PAGE_16K, read_elf
from liteship.types import Check, Verdict

#: the ABIs checked for 16 KB alignment (32-bit ABIs keep 4 KB pages)
ABIS_64 = ("arm64-v8a", "x86_64")
MODEL_ALIGNMENT = 4
NO_COMPRESS_FIX = ('keep models uncompressed: androidResources { noCompress += "tflite" } in app/build.gradle.kts '
                   "(Groovy: aaptOptions { noCompress 'tflite' })")


@dataclass(frozen=True)
class ModelFacts:
    path: str  # in the archive
    size: int
    stored: bool  # as the device will see it (AAB: after bundletool)
    data_offset: int | None  # None: not known here (AAB: bundletool aligns)
    lint: dict[str, Any] | None  # LintResult.to_dict(), None when it could not be read
    lint_error: str | None = None


@dataclass(frozen=True)
class LibraryFacts:
    path: str
    abi: str
    name: str
    stored: bool
    data_offset: int | None
    load_alignments: tuple[int, ...]
    machine: str | None
    runtime: str | None
    artifact: str | None
    error: str | None = None

    @property
    def min_alignment(self) -> int | None:
        return min(self.load_alignments) if self.load_alignments else None


@dataclass(frozen=True)
class RuntimeFacts:
    runtime: str
    artifact: str
    libraries: tuple[str, ...]
    known_problems: tuple[str, ...]


@dataclass(frozen=True)
class ApkFacts:
    path: str
    kind: str  # apk | aab
    package: str | None
    contracts: tuple[str, ...]
    contracts_source: str  # "--contract" | "inferred"
    notes: tuple[str, ...]
    models: tuple[ModelFacts, ...]
    libraries: tuple[LibraryFacts, ...]
    runtimes: tuple[RuntimeFacts, ...]
    other_abis: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _abi_of(entry: Entry) -> tuple[str, str] | None:
    parts = entry.path.split("/")
    if len(parts) == 3 and parts[0] == "lib" and parts[2].endswith(".so"):
        return parts[1], parts[2]
    return None


def _model_stored(archive: Archive, entry: Entry) -> bool:
    if archive.kind == "aab":
        return any(glob_matches(g, entry.path) for g in archive.uncompressed_globs)
    return entry.stored


def inspect_archive(path: Path, contracts: Sequence[str] | None = None, *, runtime: bool = False) -> ApkFacts:
    """Everything ``liteship apk`` measures. Raises ApkFileProblem for an unreadable archive,
    UsageProblem for an unknown contract. ``runtime``: also load and run each model in the
    real runtimes of its contracts (lint's child processes), as ``liteship lint`` does."""
    from liteship.apk.manifest import package_of
    from liteship.errors import LiteshipError, UsageProblem
    from liteship.validation import contracts as C
    from liteship.validation.lint import lint_bytes

    if contracts:
        unknown = [c for c in contracts if c not in C.BY_NAME]
        if unknown:
            raise UsageProblem(f"unknown contract(s) {unknown}; choose from {', '.join(C.NAMES)}")
    archive = open_archive(path)
    package = None
    if archive.kind == "apk":
        manifest = next(e for e in archive.entries if e.name == "AndroidManifest.xml")
        package = package_of(archive.read(manifest))

    libraries: list[LibraryFacts] = []
    found: dict[str, dict[str, Any]] = {}
    other_abis: set[str] = set()
    for entry in archive.entries:
        where = _abi_of(entry)
        if where is None:
            continue
        abi, name = where
        known = rt.library_of(name)
        if known is not None:
            slot = found.setdefault(known.runtime, {"artifacts": [], "libraries": [], "problems": []})
            slot["artifacts"].append(known.artifact)
            slot["libraries"].append(f"{abi}/{name}")
            if known.known_problem:
                slot["problems"].append(f"{name}: {known.known_problem}")
        if abi not in ABIS_64:
            other_abis.add(abi)
            continue
        offset = entry.data_offset if archive.kind == "apk" else None
        try:
            elf = read_elf(archive.read(entry))
            libraries.append(LibraryFacts(entry.name, abi, name, entry.stored, offset, elf.load_alignments,
                                          elf.machine, known.runtime if known else None,
                                          known.artifact if known else None))
        except ValueError as exc:
            libraries.append(LibraryFacts(entry.name, abi, name, entry.stored, offset, (), None,
                                          known.runtime if known else None, known.artifact if known else None,
                                          error=str(exc)))
    runtime_facts = tuple(RuntimeFacts(name, "; ".join(dict.fromkeys(v["artifacts"])), tuple(v["libraries"]),
                                       tuple(dict.fromkeys(v["problems"]))) for name, v in found.items())
    notes: list[str] = []
    if contracts:
        chosen, source = tuple(dict.fromkeys(contracts)), "--contract"
    else:
        chosen_list, notes = rt.infer_contracts(set(found), package, C.NAMES)
        chosen, source = chosen_list, "inferred"

    models: list[ModelFacts] = []
    for entry in archive.entries:
        if not entry.path.lower().endswith(".tflite"):
            continue
        stored = _model_stored(archive, entry)
        offset = entry.data_offset if archive.kind == "apk" else None
        lint = error = None
        if chosen:
            try:
                lint = lint_bytes(archive.read(entry), chosen, source=entry.name, gpu=False, runtime=runtime).to_dict()
            except LiteshipError as exc:
                error = exc.message
        models.append(ModelFacts(entry.name, entry.size, stored, offset, lint, error))
    return ApkFacts(str(path), archive.kind, package, chosen, source, tuple(notes), tuple(models),
                    tuple(libraries), runtime_facts, tuple(sorted(other_abis)))


def _model_checks(facts: ApkFacts, m: ModelFacts) -> list[Check]:
    p = f"apk.model.{m.path}"
    checks = []
    how = "stored (uncompressed)" if m.stored else "compressed"
    if facts.kind == "aab":
        expected = "an uncompressed_glob of BundleConfig.pb matches it"
    else:
        expected = "stored (uncompressed)"
    checks.append(Check(f"{p}.stored", Verdict.PASS if m.stored else Verdict.FAIL, expected, how,
                        "" if m.stored else f"{m.path} is compressed: the runtime cannot memory-map it from the "
                        "APK and copies it into memory at start-up (or fails to load it from an asset file descriptor)",
                        "" if m.stored else NO_COMPRESS_FIX))
    if m.data_offset is None or not m.stored:
        reason = ("bundletool aligns uncompressed files when it builds the APKs" if facts.kind == "aab"
                  else "compressed: not memory-mapped, alignment does not apply")
        checks.append(Check(f"{p}.aligned", Verdict.NA, f"data offset % {MODEL_ALIGNMENT} == 0", None, reason))
    else:
        rest = m.data_offset % MODEL_ALIGNMENT
        checks.append(Check(f"{p}.aligned", Verdict.PASS if rest == 0 else Verdict.FAIL,
                            f"data offset % {MODEL_ALIGNMENT} == 0", m.data_offset,
                            f"offset {m.data_offset} (% 16 = {m.data_offset % 16})" if rest == 0 else
                            f"{m.path} starts at byte {m.data_offset} of the APK: memory-mapped, its buffer is not "
                            "4-byte aligned ('The supplied buffer is not 4-bytes aligned' on 32-bit ARM)",
                            "" if rest == 0 else "zipalign the APK (`zipalign -p -f 4 in.apk out.apk`; AGP does it "
                            "for uncompressed entries)"))
    if m.lint is None:
        if m.lint_error:
            checks.append(Check(f"{p}.lint", Verdict.FAIL, "a TFLite model", m.lint_error,
                                f"{m.path} is not a readable TFLite model", "rebuild the model (liteship run)"))
        else:
            checks.append(Check(f"{p}.lint", Verdict.SKIP, "app contracts", None,
                                "no contract to lint with: " + "; ".join(facts.notes)))
        return checks
    for name, result in m.lint["contracts"].items():
        failed = [c for c in result["checks"] if c["verdict"] == Verdict.FAIL]
        skipped = [c for c in result["checks"] if c["verdict"] == Verdict.SKIP]
        if failed:
            checks.append(Check(f"{p}.lint.{name}", Verdict.FAIL, "every check passes", [c["id"] for c in failed],
                                "; ".join(f"{c['id']}: {c['message']}" for c in failed[:4]),
                                "; ".join(dict.fromkeys(c["fix"] for c in failed if c.get("fix")))[:600]))
        elif skipped or result["verdict"] != Verdict.PASS:  # a check that could not run is never a pass
            checks.append(Check(f"{p}.lint.{name}", Verdict.SKIP, "every check passes", [c["id"] for c in skipped],
                                "; ".join(f"{c['id']}: {c['message']}" for c in skipped[:4]) or
                                f"contract {name}: {result['verdict']}"))
        else:
            checks.append(Check(f"{p}.lint.{name}", Verdict.PASS, "every check passes", "pass",
                                f"contract {name} ({facts.contracts_source})"))
    return checks


def _library_checks(lib: LibraryFacts, problems: dict[str, str]) -> list[Check]:
    p = f"apk.lib.{lib.abi}/{lib.name}"
    origin = f"from {lib.artifact}" if lib.artifact else "origin unknown to liteship (your own code or another AAR)"
    checks = []
    if lib.error is not None:
        checks.append(Check(f"{p}.16kb", Verdict.FAIL, f"PT_LOAD p_align >= {PAGE_16K}", None,
                            f"{lib.path} ({origin}): {lib.error}", "rebuild or replace the library"))
    else:
        low = lib.min_alignment
        ok = low is not None and low >= PAGE_16K
        known = problems.get(lib.name, "")
        checks.append(Check(f"{p}.16kb", Verdict.PASS if ok else Verdict.FAIL, f"PT_LOAD p_align >= {PAGE_16K}",
                            list(lib.load_alignments),
                            f"{lib.path} ({origin})" if ok else
                            f"{lib.path} ({origin}) has PT_LOAD segments aligned to {low} bytes: it does not load on "
                            "16 KB page devices, and Google Play refuses it for apps targeting Android 15+",
                            "" if ok else (known + "; " if known else "") +
                            "upgrade the artifact to a 16 KB-aligned release, or relink your own library with "
                            "-Wl,-z,max-page-size=16384 (NDK r27+ does it by default)"))
    if not lib.stored or lib.data_offset is None:
        checks.append(Check(f"{p}.zipalign", Verdict.NA, f"data offset % {PAGE_16K} == 0", None,
                            "compressed: extracted at install (legacy packaging), zip alignment does not apply"
                            if not lib.stored else "App Bundle: bundletool aligns the APKs it builds"))
    else:
        rest = lib.data_offset % PAGE_16K
        checks.append(Check(f"{p}.zipalign", Verdict.PASS if rest == 0 else Verdict.FAIL,
                            f"data offset % {PAGE_16K} == 0", lib.data_offset,
                            "" if rest == 0 else f"{lib.path} is stored uncompressed at byte {lib.data_offset}: "
                            "it is loaded straight from the APK and must start on a 16 KB boundary",
                            "" if rest == 0 else "build with AGP >= 8.5.1 (16 KB zip alignment), or "
                            "`zipalign -P 16 -f 4 in.apk out.apk`"))
    return checks


def judge(facts: ApkFacts) -> list[Check]:
    checks: list[Check] = []
    if facts.models:
        checks.append(Check("apk.models", Verdict.PASS, ">= 1 .tflite", len(facts.models),
                            ", ".join(m.path for m in facts.models)))
    else:
        checks.append(Check("apk.models", Verdict.NA, ">= 1 .tflite", 0, "no .tflite in the archive (a model "
                            "downloaded at run time is not checked)"))
    for m in facts.models:
        checks += _model_checks(facts, m)
    problems = {lib.split(":", 1)[0]: lib.split(": ", 1)[1] for r in facts.runtimes for lib in r.known_problems}
    for lib in facts.libraries:
        checks += _library_checks(lib, problems)
    return checks


@dataclass(frozen=True)
class ApkResult:
    facts: ApkFacts
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return not any(c.verdict == Verdict.FAIL for c in self.checks)

    def failed(self) -> list[str]:
        return [c.id for c in self.checks if c.verdict == Verdict.FAIL]

    def to_dict(self) -> dict[str, Any]:
        skipped = any(c.verdict == Verdict.SKIP for c in self.checks)
        status = "fail" if not self.ok else ("skip" if skipped else "pass")  # a check that could not run is no pass
        return {"schema": "liteship.apk", "version": 1, "status": status,
                **self.facts.to_dict(), "checks": [c.to_dict() for c in self.checks]}


def check_apk(path: Path, contracts: Sequence[str] | None = None, *, runtime: bool = False) -> ApkResult:
    facts = inspect_archive(path, contracts, runtime=runtime)
    return ApkResult(facts, tuple(judge(facts)))


def format_report(result: ApkResult) -> str:
    """The human report: what was found, then failing checks first with their fix."""
    f = result.facts
    lines = [f"apk {f.path} ({f.kind}{', ' + f.package if f.package else ''})"]
    for r in f.runtimes:
        lines.append(f"  runtime: {r.runtime} ({r.artifact}): {', '.join(r.libraries)}")
        lines += [f"    known problem: {p}" for p in r.known_problems]
    if not f.runtimes:
        lines.append("  runtime: none of LiteRT / TFLite / MediaPipe / Task Library")
    lines.append(f"  contracts ({f.contracts_source}): {', '.join(f.contracts) or '-'}")
    lines += [f"  note: {n}" for n in f.notes]
    if f.other_abis:
        lines.append(f"  not checked for 16 KB (32-bit ABIs): {', '.join(f.other_abis)}")
    order = {Verdict.FAIL: 0, Verdict.PASS: 1, Verdict.SKIP: 2, Verdict.NA: 3}
    lines.append(f"\n{'PASS' if result.ok else 'FAIL'}: {len(result.checks)} checks, {len(result.failed())} failed")
    for c in sorted(result.checks, key=lambda c: order.get(c.verdict, 4)):
        lines.append(f"  {c.verdict:<4} {c.id}")
        if c.verdict == Verdict.FAIL:
            lines.append(f"       {c.message}")
            if c.fix:
                lines.append(f"       fix: {c.fix}")
    return "\n".join(lines)
