"""adb-style RSA keys: ``~/.android/adbkey`` (PKCS#8 PEM) and ``adbkey.pub`` (Android format).

The public key format is what adbd keeps in ``/data/misc/adb/adb_keys``: base64 of the
``RSAPublicKey`` struct (modulus size in words, n0inv, modulus and R^2 little-endian,
exponent) followed by `` user@host``. The host side signs the device's 20-byte token as
an already-hashed SHA-1 digest (PKCS#1 v1.5).
"""

from __future__ import annotations

import base64
import os
import struct
import tempfile
from pathlib import Path

from adb_shell.auth import keygen as _keygen
from adb_shell.auth.sign_pythonrsa import PythonRSASigner
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from liteship.errors import DeviceAuthProblem

KEY_NAME = "adbkey"
_STRUCT = _keygen.ANDROID_RSAPUBLICKEY_STRUCT
_WORDS = _keygen.ANDROID_PUBKEY_MODULUS_SIZE_WORDS
_MOD_BYTES = _keygen.ANDROID_PUBKEY_MODULUS_SIZE


def android_dir() -> Path:
    """Where adb keeps its keys: $ANDROID_USER_HOME, $ANDROID_SDK_HOME/.android or $HOME/.android."""
    if os.environ.get("ANDROID_USER_HOME"):
        return Path(os.environ["ANDROID_USER_HOME"])
    if os.environ.get("ANDROID_SDK_HOME"):
        return Path(os.environ["ANDROID_SDK_HOME"]) / ".android"
    return Path(os.environ.get("HOME") or Path.home()) / ".android"


def default_key_path() -> Path:
    return android_dir() / KEY_NAME


def encode_public_key(key: rsa.RSAPublicKey) -> bytes:
    """The RSAPublicKey struct adbd reads (adb_shell.auth.keygen.encode_pubkey takes a PEM
    *path*; this takes the key, so nothing has to be written to disk first)."""
    nums = key.public_numbers()
    if nums.n.bit_length() > _MOD_BYTES * 8:
        raise ValueError("adb keys are RSA-2048")
    r32 = 1 << 32
    n0inv = r32 - pow(nums.n % r32, -1, r32)
    rr = pow(1 << (_MOD_BYTES * 8), 2, nums.n)
    return struct.pack(_STRUCT, _WORDS, n0inv, nums.n.to_bytes(_MOD_BYTES, "little"),
                       rr.to_bytes(_MOD_BYTES, "little"), nums.e)


def public_key_line(key: rsa.RSAPublicKey, user: str | None = None) -> str:
    """``adbkey.pub`` / ``adb_keys`` line: base64 struct + " user@host"."""
    who = user if user is not None else _keygen.get_user_info().strip()
    return base64.b64encode(encode_public_key(key)).decode("ascii") + " " + who


def parse_public_key(line: str | bytes) -> rsa.RSAPublicKey:
    """Inverse of :func:`public_key_line` (adb-shell only logs what it decodes)."""
    if isinstance(line, bytes):
        line = line.decode("ascii", "replace")
    b64 = line.strip().strip("\0").split()[0]
    raw = base64.b64decode(b64, validate=True)
    words, _n0inv, mod, _rr, e = struct.unpack(_STRUCT, raw)
    if words != _WORDS:
        raise ValueError(f"modulus of {words} words, adb keys have {_WORDS}")
    return rsa.RSAPublicNumbers(e, int.from_bytes(mod, "little")).public_key()


def verify_token(key: rsa.RSAPublicKey, token: bytes, signature: bytes) -> bool:
    """adbd's check: RSA PKCS#1 v1.5 over ``token`` taken as a SHA-1 digest."""
    try:
        key.verify(signature, token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
        return True
    except (InvalidSignature, ValueError):
        return False


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from its first byte on, then rename into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_key(path: Path | None = None) -> Path:
    """Return the private key path, creating ``adbkey`` (0600) and ``adbkey.pub`` if missing.

    adb_shell.auth.keygen.keygen does almost this, but opens the private key with the
    process umask (world-readable for an instant, or for good with umask 022) and writes
    in place; here the key is born 0600 under a temporary name and renamed.
    """
    path = Path(path) if path is not None else default_key_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pub = path.with_name(path.name + ".pub")
    if path.exists():
        if not pub.exists():
            key = _load_private(path)
            _write_public(pub, key.public_key())
        return path
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _write_private(path, pem)
    _write_public(pub, key.public_key())
    return path


def _write_public(pub: Path, key: rsa.RSAPublicKey) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{pub.name}.", suffix=".tmp", dir=pub.parent)
    with os.fdopen(fd, "w") as f:
        f.write(public_key_line(key))
    os.chmod(tmp, 0o644)
    os.replace(tmp, pub)


def _load_private(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise DeviceAuthProblem(
            f"cannot read the adb key {path}: {e}; expected a PEM RSA private key as adb writes it",
            hint=f"move {path} away to let liteship create a new key (the phone will ask again)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DeviceAuthProblem(f"{path} is not an RSA key; adb keys are RSA-2048",
                                hint=f"move {path} away to let liteship create a new key")
    return key


def _pkcs8_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def vendor_key_paths() -> list[Path]:
    """Keys named by ADB_VENDOR_KEYS (files, or folders of ``*.adb_key`` files), as adb reads it."""
    out: list[Path] = []
    for item in filter(None, os.environ.get("ADB_VENDOR_KEYS", "").split(os.pathsep)):
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.name.endswith(".adb_key") and q.is_file()))
        elif p.is_file():
            out.append(p)
    return out


def signer_for(path: Path) -> PythonRSASigner:
    key = _load_private(path)
    pub = path.with_name(path.name + ".pub")
    pub_text = pub.read_text().strip() if pub.exists() else public_key_line(key.public_key())
    # PythonRSASigner only reads PKCS#8; older adb versions wrote PKCS#1 ("RSA PRIVATE KEY")
    return PythonRSASigner(pub_text, _pkcs8_pem(key))


def load_signers(key_path: Path | None = None, *, create: bool = True) -> list[PythonRSASigner]:
    """Our key first (created when missing), then ADB_VENDOR_KEYS, as adb tries them."""
    path = ensure_key(key_path) if create else (Path(key_path) if key_path else default_key_path())
    signers = [signer_for(path)]
    for vk in vendor_key_paths():
        if vk.resolve() != path.resolve():
            signers.append(signer_for(vk))
    return signers
