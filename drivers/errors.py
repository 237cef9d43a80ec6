"""Errors raised by ``drivers``. Every one derives from :class:`DriverError`.

A codec raises a :class:`FrameError` subclass for a frame it cannot accept; the error
keeps the offending bytes in ``raw`` so the hub can store them for inspection.
"""

from __future__ import annotations


class DriverError(Exception):
    """Root of every error raised by the ``drivers`` package."""


class FrameError(DriverError):
    """A frame could not be decoded. ``raw`` holds the bytes, ``reason`` a short stable code."""

    reason = "bad_frame"

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = raw


class TruncatedFrame(FrameError):
    """Fewer bytes than the frame's own header or flags promise."""

    reason = "truncated"


class OverlongFrame(FrameError):
    """More bytes than the format allows."""

    reason = "overlong"


class BadChecksum(FrameError):
    """Checksum or CRC mismatch."""

    reason = "bad_checksum"


class InvalidValue(FrameError):
    """A field holds a value the specification does not allow (NaN where a number is required, ...)."""

    reason = "invalid_value"


class DeviceStatusError(DriverError):
    """The device answered with an error status (for example an ID-card reader's SW3 code)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class TransportError(DriverError):
    """The link to a device failed (port vanished, BLE disconnect, TCP reset)."""


class ConfigError(DriverError):
    """A device's configuration is unusable; the message names the key and the fix."""
