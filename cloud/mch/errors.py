"""Errors of the MCH part of the cloud (all are :class:`cloud.errors.CloudError`)."""

from __future__ import annotations

from cloud.errors import CloudError


class MchError(CloudError):
    """An MCH operation was refused: unknown case, bad correction, unusable profile or secret."""
