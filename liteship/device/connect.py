"""Device specs -> connected :class:`~liteship.device.base.Device` objects.

``tcp:HOST:PORT``  adbd over TCP, directly with adb-shell (or through the adb server when
                   ``transport="adb-server"``: ``adb connect HOST:PORT`` first)
``usb`` / ``usb:SERIAL``  adbd over USB with adb-shell (libusb; the adb server must not hold it)
anything else      a serial the local adb server lists (``adb devices``)
"""

from __future__ import annotations

from pathlib import Path

from liteship.device.base import Device, DeviceInfo
from liteship.errors import DeviceConnectionProblem, DeviceProblem, UsageProblem

TRANSPORTS = ("adb-shell", "adb-server")


def parse_tcp(spec: str) -> tuple[str, int]:
    rest = spec[len("tcp:"):]
    host, sep, port_s = rest.rpartition(":")
    if not sep or not host or not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise UsageProblem(f"device spec {spec!r}: expected tcp:HOST:PORT (e.g. tcp:192.168.1.20:5555)")
    return host.strip("[]"), int(port_s)


def open_device(spec: str, *, transport: str | None = None, key_path: Path | None = None,
                timeout_s: float = 10) -> Device:
    if transport is not None and transport not in TRANSPORTS:
        raise UsageProblem(f"transport {transport!r}: must be one of {', '.join(TRANSPORTS)}")
    if spec.startswith("tcp:"):
        host, port = parse_tcp(spec)
        if transport == "adb-server":
            from liteship.device.adbserver import AdbServerDevice, server_connect

            serial = server_connect(f"{host}:{port}", timeout_s=timeout_s)
            return AdbServerDevice(serial, timeout_s=timeout_s)
        from liteship.device.adbshell import AdbShellDevice

        return AdbShellDevice.connect_tcp(host, port, key_path=key_path, timeout_s=timeout_s)
    if spec == "usb" or spec.startswith("usb:"):
        if transport == "adb-server":
            raise UsageProblem("usb specs use adb-shell; for a phone the adb server holds, pass its serial")
        from liteship.device.adbshell import AdbShellDevice

        return AdbShellDevice.connect_usb(spec[4:] or None, key_path=key_path, timeout_s=timeout_s)
    if not spec:
        raise UsageProblem("empty device spec: expected tcp:HOST:PORT, usb[:SERIAL] or a serial from `adb devices`")
    if transport == "adb-shell":
        raise UsageProblem(f"device spec {spec!r} is an adb server serial; adb-shell needs tcp:HOST:PORT or usb")
    from liteship.device.adbserver import AdbServerDevice, list_server_devices

    known, reason = list_server_devices()
    if not any(d.serial == spec for d in known):
        listed = ", ".join(f"{d.serial} ({d.state})" for d in known) or "none"
        raise DeviceConnectionProblem(
            f"device {spec!r} is not listed by the adb server (listed: {listed}){'; ' + reason if reason else ''}",
            hint="check `adb devices`; network devices need tcp:HOST:PORT or `adb connect` first")
    return AdbServerDevice(spec, timeout_s=timeout_s)


class DeviceList(list):  # list[DeviceInfo]
    """A plain list of DeviceInfo with ``notes``: why something is missing (no adb server...)."""

    def __init__(self, items: list[DeviceInfo], notes: list[str]) -> None:
        super().__init__(items)
        self.notes = notes


def list_devices(tcp_specs: tuple[str, ...] | list[str] = (), *, key_path: Path | None = None,
                 timeout_s: float = 3) -> DeviceList:
    """Devices the adb server lists plus the given ``tcp:`` specs probed with adb-shell.

    Never raises for a missing server or an unreachable device: the list is then shorter
    (or empty) and ``.notes`` says why.
    """
    from liteship.device.adbserver import list_server_devices

    devices, reason = list_server_devices()
    notes = [reason] if reason else []
    for spec in tcp_specs:
        try:
            with open_device(spec, transport="adb-shell", key_path=key_path, timeout_s=timeout_s) as dev:
                model = dev.getprop("ro.product.model")
                product = dev.getprop("ro.product.name")
            devices.append(DeviceInfo(serial=spec, state="device", transport="adb-shell", model=model, product=product))
        except DeviceProblem as e:
            state = "unauthorized" if e.exit_code == 41 else "offline"
            devices.append(DeviceInfo(serial=spec, state=state, transport="adb-shell"))
            notes.append(f"{spec}: {e.message}")
    return DeviceList(devices, notes)
