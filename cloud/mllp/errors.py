"""Errors raised by ``cloud.mllp``. Every one derives from :class:`MllpError`.

``MllpError`` derives from :class:`cloud.errors.CloudError`, the root of the cloud package.
"""

from __future__ import annotations

from cloud.errors import CloudError


class MllpError(CloudError):
    """Root of every error raised by the MLLP listener, stores, sender and outbox."""


class StoreError(MllpError):
    """The message store could not durably commit (the message is NOT acknowledged)."""


class SendError(MllpError):
    """An outbound message could not be delivered."""

    retryable = True


class AckTimeout(SendError):
    """No matching ACK arrived after every attempt (delivery state unknown: resend later, same control id)."""


class PeerUnavailable(SendError):
    """The receiver could not be reached (connect refused, TLS failure, reset)."""


class NegativeAck(SendError):
    """The receiver answered AE/AR (or CE/CR): resending the same message will not help."""

    retryable = False

    def __init__(self, code: str, reason: str, control_id: str) -> None:
        super().__init__(f"{control_id}: {reason}")
        self.code = code
        self.reason = reason
        self.control_id = control_id
