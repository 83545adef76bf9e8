"""An APK or App Bundle as a zip: entries, how each is stored, where its data starts.

APK (a zip with ``AndroidManifest.xml`` at the root): entries are what the device installs.
AAB (``BundleConfig.pb`` at the root, modules ``base/``, ``feature/``...): bundletool builds
the APKs; it leaves a file uncompressed when its path (without the module folder) matches
an ``uncompressed_glob`` of ``BundleConfig.pb``, and aligns uncompressed data itself.
"""

from __future__ import annotations

import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from liteship.errors import ApkFileProblem

#: zip local file header: signature, ..., name length at 26, extra length at 28 (APPNOTE 4.3.7)
_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_LOCAL_SIGNATURE = 0x04034B50


@dataclass(frozen=True)
class Entry:
    name: str  # path in the archive
    path: str  # path in the installed APK (AAB: without the module folder)
    module: str | None  # AAB module (base, a feature, an asset pack), None in an APK
    stored: bool  # ZIP_STORED (uncompressed) in this archive
    size: int
    data_offset: int  # where the entry's bytes start in the file


@dataclass(frozen=True)
class Archive:
    path: Path
    kind: str  # "apk" | "aab"
    entries: tuple[Entry, ...]
    #: AAB only: BundleConfig.pb's compression.uncompressed_glob
    uncompressed_globs: tuple[str, ...] = ()

    def read(self, entry: Entry) -> bytes:
        with zipfile.ZipFile(self.path) as z:
            return z.read(entry.name)


def open_archive(path: Path) -> Archive:
    """Read the zip directory; raises ApkFileProblem (exit 15) for anything that is not one."""
    path = Path(path)
    if not path.is_file():
        raise ApkFileProblem(f"{path} does not exist or is not a file; give the APK (app-debug.apk) or the "
                             "App Bundle (.aab) the build wrote")
    try:
        with zipfile.ZipFile(path) as z, open(path, "rb") as raw:
            infos = z.infolist()
            names = {i.filename for i in infos}
            if "BundleConfig.pb" in names:
                kind = "aab"
            elif "AndroidManifest.xml" in names:
                kind = "apk"
            else:
                raise ApkFileProblem(f"{path} is a zip but neither an APK (no AndroidManifest.xml at its root) nor "
                                     "an App Bundle (no BundleConfig.pb)")
            entries = []
            for info in infos:
                if info.is_dir():
                    continue
                module, inner = _module_path(info.filename) if kind == "aab" else (None, info.filename)
                entries.append(Entry(info.filename, inner, module, info.compress_type == zipfile.ZIP_STORED,
                                     info.file_size, _data_offset(raw, info)))
            globs = _uncompressed_globs(z.read("BundleConfig.pb")) if kind == "aab" else ()
    except ApkFileProblem:
        raise
    except (zipfile.BadZipFile, OSError, struct.error, EOFError, ValueError) as exc:
        raise ApkFileProblem(f"{path} is not a readable zip/APK: {exc}",
                             hint="rebuild it; a truncated upload or download looks like this") from None
    return Archive(path, kind, tuple(entries), globs)


def _module_path(name: str) -> tuple[str | None, str]:
    """``base/assets/x.tflite`` -> ("base", "assets/x.tflite"); root files (BundleConfig.pb,
    BUNDLE-METADATA/...) have no module. ``root/`` holds files that go to the APK's root."""
    head, sep, rest = name.partition("/")
    if not sep or head in ("BUNDLE-METADATA", "META-INF"):
        return None, name
    if rest.startswith("root/"):
        rest = rest[len("root/"):]
    return head, rest


def _data_offset(raw: "object", info: zipfile.ZipInfo) -> int:
    raw.seek(info.header_offset)  # type: ignore[attr-defined]
    header = raw.read(_LOCAL_HEADER.size)  # type: ignore[attr-defined]
    fields = _LOCAL_HEADER.unpack(header)
    if fields[0] != _LOCAL_SIGNATURE:
        raise ValueError(f"{info.filename}: no local file header at offset {info.header_offset}")
    return info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """Protocol buffer wire format, one level: (field number, wire type, value)."""
    out: list[tuple[int, int, bytes | int]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, wire, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            out.append((number, wire, data[pos:pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"BundleConfig.pb: unsupported wire type {wire}")
    return out


def _uncompressed_globs(config: bytes) -> tuple[str, ...]:
    """BundleConfig.compression (field 3) .uncompressed_glob (field 1, repeated string), from
    bundletool's config.proto. Read with the wire format: one nested field, no schema needed."""
    globs: list[str] = []
    for number, wire, value in _fields(config):
        if number == 3 and wire == 2 and isinstance(value, bytes):
            globs += [v.decode("utf-8", "replace") for n, w, v in _fields(value) if n == 1 and w == 2
                      and isinstance(v, bytes)]
    return tuple(globs)


def glob_matches(pattern: str, path: str) -> bool:
    """bundletool's glob: ``**`` any path (also across ``/``), ``*`` within a name, ``?`` one character."""
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.fullmatch(regex, path) is not None
