"""Errors raised by ``provisioning``. Every one derives from :class:`ProvisioningError`.

Each error has a stable ``reason`` (used in HTTP answers, audit entries and metrics) and
an HTTP ``status`` the cloud's handlers answer with, so the server maps errors to
responses in one place. Messages are written for the person at the keyboard (an admin or
a clinic technician), name what to do next, and never contain a secret: no token, no
password, no private key.

Library errors (``cryptography``, ``msgspec``) are wrapped at this boundary with
``raise ... from``.
"""

from __future__ import annotations


class ProvisioningError(Exception):
    """Root of every error raised by the ``provisioning`` package."""

    reason = "provisioning"
    status = 400


# --- fleet CA ----------------------------------------------------------------------------


class CaError(ProvisioningError):
    """The fleet CA cannot be created, loaded or used."""

    reason = "ca"
    status = 500


class WrongPassphrase(CaError):
    """The CA private key does not open with the given passphrase."""

    reason = "wrong_passphrase"


class CaExists(CaError):
    """``ca init`` would overwrite an existing CA."""

    reason = "ca_exists"


class CertificateError(ProvisioningError):
    """A hub certificate is not acceptable."""

    reason = "bad_certificate"
    status = 401


class UntrustedCertificate(CertificateError):
    """The certificate was not issued by this fleet CA (or is malformed)."""

    reason = "untrusted_certificate"


class CertificateExpired(CertificateError):
    """The certificate is outside its validity period."""

    reason = "certificate_expired"


class CertificateRevoked(CertificateError):
    """The certificate's serial, or its hub, has been revoked."""

    reason = "revoked"
    status = 403


class BundleError(ProvisioningError):
    """A signed CA bundle (the cloud's public keys) does not verify or does not parse."""

    reason = "bad_bundle"


# --- enrollment tokens -------------------------------------------------------------------


class TokenError(ProvisioningError):
    """An enrollment token is refused."""

    reason = "token"
    status = 403


class TokenMalformed(TokenError):
    """The text is not a token: wrong length, bad character, or the check character fails."""

    reason = "token_malformed"
    status = 400


class TokenUnknown(TokenError):
    """No token with this value exists (never issued, or cancelled)."""

    reason = "token_unknown"


class TokenUsed(TokenError):
    """The token was already used to enroll a different key."""

    reason = "token_used"


class TokenExpired(TokenError):
    """The token's expiry time has passed."""

    reason = "token_expired"


class TokenWrongSite(TokenError):
    """The token was issued for a different site than the one asked for."""

    reason = "token_wrong_site"


class TokenWrongSerial(TokenError):
    """The token is bound to a different hub serial number."""

    reason = "token_wrong_serial"


# --- enrollment and rotation requests ----------------------------------------------------


class RequestError(ProvisioningError):
    """An enrollment or rotation request is malformed."""

    reason = "bad_request"


class SiteIdError(RequestError):
    """A site id breaks the one rule (``provisioning.admin.SITE_ID_PATTERN``); ``lower`` is the spelling that
    would do, when lower case alone fixes it (pages show catalog ``refused.<reason>`` with ``params``)."""

    reason = "bad_site_id"

    def __init__(self, message: str, site_id: str, lower: str = "") -> None:
        super().__init__(message)
        self.params = {"site_id": site_id, "lower": lower}
        if lower:
            self.reason = "bad_site_id_upper"


class ReasonRequired(RequestError):
    """A change that the audit log must explain (revoking a hub, removing a device) came without a reason."""

    reason = "reason_required"


class CsrInvalid(RequestError):
    """The CSR does not parse or uses a key type other than Ed25519."""

    reason = "csr_invalid"


class CsrMismatch(RequestError):
    """The CSR's signature, or the proof of possession, does not match the CSR's key."""

    reason = "csr_mismatch"


class ResponseError(ProvisioningError):
    """The cloud's enrollment or rotation answer failed the hub's checks (do not trust it)."""

    reason = "bad_response"


class RotationError(ProvisioningError):
    """A key rotation request is refused."""

    reason = "rotation_refused"
    status = 401


# --- hubs ---------------------------------------------------------------------------------


class HubError(ProvisioningError):
    """A hub named in a request cannot be used."""

    reason = "hub"
    status = 404


class UnknownHub(HubError):
    """No hub with this id is enrolled."""

    reason = "unknown_hub"
    status = 403


class HubRevoked(HubError):
    """The hub has been taken out of service; every request from it is refused."""

    reason = "revoked"
    status = 403


class UnknownKey(HubError):
    """The key id is not a current key of the hub (never registered, or retired after rotation)."""

    reason = "unknown_key"
    status = 401


class NotFound(ProvisioningError):
    """A site, hub or device named by an admin does not exist."""

    reason = "not_found"
    status = 404


class Conflict(ProvisioningError):
    """The object already exists (a site id, a device address on a hub)."""

    reason = "conflict"
    status = 409


# --- inventory ----------------------------------------------------------------------------


class InventoryError(ProvisioningError):
    """A device record or a hub configuration document is invalid."""

    reason = "invalid_device"
    status = 422


class ConfigDocumentError(InventoryError):
    """A hub configuration document does not decode, or its signature does not verify."""

    reason = "bad_config"


# --- admin authentication ------------------------------------------------------------------


class AuthError(ProvisioningError):
    """Admin authentication failed. The message names the factor only after the password was right
    (docs/dashboard.md, "Sign-in messages")."""

    reason = "unauthorized"
    status = 401


class WrongCode(AuthError):
    """The one-time code is wrong or malformed (said only after the password was right)."""

    reason = "bad_code"


class CodeReused(AuthError):
    """The one-time code is right but was already used: the next one must be waited for."""

    reason = "code_reused"


class AccountLocked(AuthError):
    """Too many failed logins; the account is locked until ``locked_until_ms``."""

    reason = "locked"
    status = 429

    def __init__(self, message: str, locked_until_ms: int) -> None:
        super().__init__(message)
        self.locked_until_ms = locked_until_ms


class Forbidden(AuthError):
    """The signed-in user's role does not allow the operation."""

    reason = "forbidden"
    status = 403


class ClientError(ProvisioningError):
    """The admin API or enrollment endpoint could not be reached or answered an error."""

    reason = "client"
    status = 502

    def __init__(self, message: str, http_status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.http_status = http_status
        self.remote_reason = reason
