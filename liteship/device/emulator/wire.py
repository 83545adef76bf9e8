"""ADB wire format (system/core/adb/protocol.txt): 24-byte little-endian message headers."""

from __future__ import annotations

import struct

A_SYNC, A_CNXN, A_OPEN, A_OKAY, A_CLSE, A_WRTE, A_AUTH, A_STLS = (
    int.from_bytes(c, "little") for c in (b"SYNC", b"CNXN", b"OPEN", b"OKAY", b"CLSE", b"WRTE", b"AUTH", b"STLS"))
#: protocol versions: >= SKIP_CHECKSUM peers neither send nor check data checksums
A_VERSION_MIN = 0x01000000
A_VERSION_SKIP_CHECKSUM = 0x01000001
A_VERSION = 0x01000001
#: MAX_PAYLOAD of a modern adbd (1 MiB); MAX_PAYLOAD_V1 for peers that send less
MAX_PAYLOAD = 1024 * 1024
MAX_PAYLOAD_V1 = 4 * 1024

AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
TOKEN_SIZE = 20

HEADER = struct.Struct("<6I")
NAMES = {A_SYNC: "SYNC", A_CNXN: "CNXN", A_OPEN: "OPEN", A_OKAY: "OKAY", A_CLSE: "CLSE",
         A_WRTE: "WRTE", A_AUTH: "AUTH", A_STLS: "STLS"}


def checksum(data: bytes) -> int:
    if not data:
        return 0
    import numpy as np

    return int(np.frombuffer(data, dtype=np.uint8).sum(dtype=np.uint64)) & 0xFFFFFFFF


def header(cmd: int, arg0: int, arg1: int, data: bytes, *, with_checksum: bool) -> bytes:
    return HEADER.pack(cmd, arg0, arg1, len(data), checksum(data) if with_checksum else 0, cmd ^ 0xFFFFFFFF)
