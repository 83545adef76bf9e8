"""Putting a model on an Android device and validating it there against the desktop.

``base.Device`` is the one interface; transports implement it (adb-shell over TCP/USB,
the local adb server). ``protocol`` is the host <-> app request/result contract, defined
by ``schema/validation-protocol.schema.json`` (the same file the Android app ships).
``emulator`` is a device-side adbd on loopback for tests and hermetic CI.
"""
