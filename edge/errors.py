"""Errors raised by ``edge``. Every one derives from :class:`EdgeError`.

Messages are written for a clinic technician: they say what is wrong and how to fix it,
and never contain patient data (ID numbers are masked before they reach a message).
"""

from __future__ import annotations


class EdgeError(Exception):
    """Root of every error raised by the ``edge`` package."""


class ConfigError(EdgeError):
    """hub.toml is unusable. ``file``, ``key`` and ``fix`` say where and what to do."""

    def __init__(self, file: str, key: str, problem: str, fix: str) -> None:
        super().__init__(f"{file}: {key}: {problem}\n  fix: {fix}")
        self.file, self.key, self.problem, self.fix = file, key, problem, fix


class IdentityError(EdgeError):
    """The hub identity directory is missing, incomplete or has unsafe permissions."""


class StoreError(EdgeError):
    """The local database cannot be used."""


class DiskFull(StoreError):
    """The disk holding the database is nearly full; new readings wait (back-pressure)."""


class SyncError(EdgeError):
    """The cloud refused a batch or answered something the hub cannot use."""


class CommandRefused(EdgeError):
    """A command from the cloud could not be executed."""
