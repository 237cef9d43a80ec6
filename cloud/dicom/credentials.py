"""STOW-RS sender credentials, pure: the token format and the ``Authorization`` header.

Every sending system (a PACS, a modality gateway) gets its own credential: a name and a
random token shown once (``mchd_`` + 256 random bits). The cloud keeps only the token's
SHA-256 digest (:func:`provisioning.auth.session_digest`: 256 random bits need no slow
hash). A sender presents it in either form (RFC 7617 / RFC 6750)::

    Authorization: Basic base64(<name>:<token>)
    Authorization: Bearer <token>

:func:`presented` reads the header with its length bounded before decoding and raises
:class:`~cloud.dicom.errors.Unauthorised` for anything it cannot read. The database side
(create, list, revoke, check) is :mod:`cloud.integration.dicom_senders`.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cloud.dicom.errors import Unauthorised

TOKEN_PREFIX = "mchd_"  # noqa: S105 - a prefix, not a secret
MAX_HEADER = 512  #: longer Authorization headers are refused unread
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TOKEN_RE = re.compile(r"mchd_[A-Za-z0-9_-]{20,100}")


@dataclass(frozen=True, slots=True)
class Presented:
    """What a request presented: the token and, with HTTP Basic, the sender's name."""

    token: str
    name: str | None


#: ``authorise(presented_or_None, peer_address, path) -> sender name``; raises Unauthorised
Authorise = Callable[[Presented | None, str, str], Awaitable[str]]


def new_token() -> str:
    """A new sender token (shown once)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_name(name: str) -> str:
    """A sender name: 1-64 of ``A-Z a-z 0-9 . _ -``, starting with a letter or digit."""
    if not NAME_RE.fullmatch(name):
        raise Unauthorised(f"sender name {name[:70]!r} must be 1-64 of A-Z a-z 0-9 . _ - (e.g. PACS1)")
    return name


def presented(header: str | None) -> Presented | None:
    """The credential in an ``Authorization`` header; ``None`` if there is no header."""
    if header is None or not header.strip():
        return None
    if len(header) > MAX_HEADER:
        raise Unauthorised("the Authorization header is too long")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        token, name = value, None
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Unauthorised("the Basic credentials are not base64 of name:token") from exc
        name, sep, token = decoded.partition(":")
        if not sep:
            raise Unauthorised("the Basic credentials are not name:token")
    else:
        raise Unauthorised(f"Authorization scheme {scheme[:20]!r} is not Basic or Bearer")
    if not _TOKEN_RE.fullmatch(token):
        raise Unauthorised("the token is not a DICOM sender token (mchd_...)")
    return Presented(token, name)
