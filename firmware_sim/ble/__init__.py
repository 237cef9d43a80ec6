"""Simulated Bluetooth LE health devices (blood pressure, thermometer, weight scale, body
composition) that speak the GATT values of the Bluetooth SIG profiles.

:mod:`.encode` builds characteristic values from the specification; :mod:`.peripheral`
plays a device (stored records behind a Record Access Control Point, scripted
measurements, faults) behind the same client API as ``bleak.BleakClient``, so a test
injects it where BlueZ would be.
"""
