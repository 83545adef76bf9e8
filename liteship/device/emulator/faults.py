"""What can go wrong on the emulated device, switched on per test (or per ``liteship emulator``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    """Failure modes of the emulated device. The defaults describe a healthy phone.

    Each one ends, on the host, in one typed ``liteship.errors.Device*`` error:

    - ``refuse_auth``: the user never accepts the "Allow USB debugging?" prompt; known keys
      are not accepted either -> DeviceAuthProblem ("unauthorized").
    - ``drop_after_bytes``: the connection drops after this many file bytes of one sync
      SEND were received -> DeviceConnectionProblem; the partial file is deleted.
    - ``storage_limit_bytes``: the device's storage holds at most this many bytes (all
      files under the root) -> sync FAIL "No space left on device" -> DeviceStorageProblem.
    - ``app_installed=False``: the demo app is not installed and cannot be installed
      (``pm install`` fails) -> ``am start`` error -> DeviceAppProblem.
    - ``app_crash``: the activity dies without writing a result.
    - ``app_hang``: the activity never writes a result (the host's poll times out).
    - ``corrupt_result``: the activity writes a truncated result.json -> DeviceResultProblem.
    - ``perturb_result``: the app computes wrong numbers (score tensors +0.01, boxes shifted
      by 0.2) -> the host's comparison with the desktop fails -> DeviceParityFailed (33).
    """

    refuse_auth: bool = False
    drop_after_bytes: int | None = None
    storage_limit_bytes: int | None = None
    app_installed: bool = True
    app_crash: bool = False
    app_hang: bool = False
    corrupt_result: bool = False
    perturb_result: bool = False
