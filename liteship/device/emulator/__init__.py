"""An emulated Android device that speaks the real ADB wire protocol on loopback TCP.

Real clients (adb-shell, Debian's ``adb``) connect to it. Its filesystem is a host folder,
its shell a small interpreter (no host shell is ever run), and its one app, the liteship
demo, answers the validation protocol with the desktop LiteRT runtime through
``liteship.device.apprunner``. Results it produces say ``emulated``: never on-device evidence.

    with start(tmp_path / "phone", installed_packages=("dev.liteship.demo",)) as emu:
        dev = open_device(emu.spec)
"""

from liteship.device.emulator.faults import Faults
from liteship.device.emulator.server import EmulatedDevice, EmulatorHandle, serve_forever, start

__all__ = ["Faults", "EmulatedDevice", "EmulatorHandle", "serve_forever", "start"]
