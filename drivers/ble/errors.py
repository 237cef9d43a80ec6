"""Errors specific to the Bluetooth LE health profiles (all derive from ``DriverError``).

A frame the device itself marks as failed (weight ``0xFFFF``, body fat ``0xFFFF``) is a
:class:`MeasurementUnsuccessful`: the hub keeps the frame for inspection like any other
rejected frame. A Record Access Control Point answer that is not a valid response is a
:class:`BadRacpResponse`; a valid response reporting failure is a :class:`RacpFailed`.
"""

from __future__ import annotations

from drivers.errors import DeviceStatusError, FrameError, InvalidValue


class MeasurementUnsuccessful(InvalidValue):
    """The device reported that the measurement did not succeed."""

    reason = "measurement_unsuccessful"


class BadRacpResponse(FrameError):
    """Bytes on the Record Access Control Point that are not a response the spec allows."""

    reason = "bad_racp_response"


class RacpFailed(DeviceStatusError):
    """The device answered a RACP request with a response code other than success."""
