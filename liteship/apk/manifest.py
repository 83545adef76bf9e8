"""The package name from an APK's binary AndroidManifest.xml (Android's compiled XML format).

A minimal reader: the string pool, then the ``package`` attribute of ``<manifest>``. Enough
for naming the app; an App Bundle's manifest is a protobuf (aapt2's format) and is not read.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path


def manifest_package(apk: Path) -> str | None:
    """The ``package`` attribute of a binary AndroidManifest.xml inside ``apk``, if readable."""
    try:
        with zipfile.ZipFile(apk) as z:
            data = z.read("AndroidManifest.xml")
    except (OSError, zipfile.BadZipFile, KeyError):
        return None
    return package_of(data)


def package_of(data: bytes) -> str | None:
    try:
        return _axml_package(data)
    except (struct.error, IndexError, UnicodeDecodeError, ValueError):
        return None


def _axml_package(data: bytes) -> str | None:
    """Minimal Android binary XML reader: the string pool, then <manifest package=...>."""
    pos = 8
    strings: list[str] = []
    while pos + 8 <= len(data):
        ctype, hsize, csize = struct.unpack_from("<HHI", data, pos)
        if csize < 8:
            return None
        if ctype == 0x0001:  # RES_STRING_POOL_TYPE
            count, _styles, flags, str_start, _sty = struct.unpack_from("<IIIII", data, pos + 8)
            utf8 = bool(flags & 0x100)
            offsets = struct.unpack_from(f"<{count}I", data, pos + hsize)
            base = pos + str_start
            for off in offsets:
                p = base + off
                if utf8:
                    p += 2 if data[p] & 0x80 else 1
                    n = data[p]
                    if n & 0x80:
                        n = ((n & 0x7F) << 8) | data[p + 1]
                        p += 2
                    else:
                        p += 1
                    strings.append(data[p:p + n].decode("utf-8"))
                else:
                    n = struct.unpack_from("<H", data, p)[0]
                    p += 2
                    if n & 0x8000:
                        n = ((n & 0x7FFF) << 16) | struct.unpack_from("<H", data, p)[0]
                        p += 2
                    strings.append(data[p:p + 2 * n].decode("utf-16-le"))
        elif ctype == 0x0102:  # RES_XML_START_ELEMENT_TYPE
            name_idx = struct.unpack_from("<I", data, pos + hsize + 4)[0]
            attr_start, attr_size, attr_count = struct.unpack_from("<HHH", data, pos + hsize + 8)
            if strings[name_idx] == "manifest":
                a = pos + hsize + attr_start
                for i in range(attr_count):
                    _ns, aname, raw = struct.unpack_from("<III", data, a + i * attr_size)
                    if strings[aname] == "package" and raw != 0xFFFFFFFF:
                        return strings[raw]
                return None
        pos += csize
    return None


