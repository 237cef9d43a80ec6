"""One-time enrollment tokens: high entropy, typable, stored only as a hash.

Format: 25 characters of Crockford base32 shown in five groups of five, for example
``7K2QD-M9XAF-0PZ4T-HB3WN-8RCVE``:

* characters 1-4 are the token **id** (20 bits, not secret): the cloud looks the token up
  by it and admins see it in listings and the audit log;
* characters 5-24 are the **secret** (100 bits from ``secrets``);
* character 25 is a **check character** (Luhn mod 32 over the first 24), so a typo is
  reported as a typo ("check the token for a mistyped character") instead of as an
  unknown token, and never costs a database lookup.

Input is forgiving the way Crockford base32 intends: case is ignored, hyphens and spaces
are dropped, ``O`` reads as ``0`` and ``I``/``L`` as ``1``.

**Stored as SHA-256, not scrypt.** A slow hash protects *low-entropy* secrets
(passwords) against offline guessing. A token carries 100 random bits and lives at most
:data:`MAX_LIFETIME_MS`; guessing a preimage of a SHA-256 digest for it is infeasible at
any hashing speed, so scrypt would add ~100 ms of CPU per enrollment for no gain. The
digest is domain-separated (``mchub/enroll-token/v1``) and compared with
:func:`hmac.compare_digest` (constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from provisioning.errors import (
    RequestError,
    TokenExpired,
    TokenMalformed,
    TokenUnknown,
    TokenUsed,
    TokenWrongSerial,
    TokenWrongSite,
)
from provisioning.stores import TokenRecord

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I L O U
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})
ID_LEN = 4
SECRET_LEN = 20
TOKEN_LEN = ID_LEN + SECRET_LEN + 1
DEFAULT_LIFETIME_MS = 24 * 3600 * 1000
MAX_LIFETIME_MS = 30 * 24 * 3600 * 1000
_DOMAIN = b"mchub/enroll-token/v1\x00"


def check_character(data: str) -> str:
    """Luhn mod 32 check character of ``data`` (Crockford base32 characters).

    Detects every single-character error and every swap of two adjacent characters except
    ``0Z`` <-> ``Z0`` (the Luhn algorithm's one blind spot, like 09/90 in base 10).
    """
    factor, total = 2, 0
    for char in reversed(data):
        addend = factor * _VALUE[char]
        factor = 1 if factor == 2 else 2
        total += addend // 32 + addend % 32
    return ALPHABET[(32 - total % 32) % 32]


@dataclass(frozen=True)
class ParsedToken:
    """A syntactically valid token: its public id and the digest to compare."""

    token_id: str
    digest: bytes

    @property
    def binding_key(self) -> bytes:
        """Key the cloud MACs its enrollment answer with; both sides can compute it."""
        return hashlib.sha256(b"mchub/enroll-binding/v1\x00" + self.digest).digest()


@dataclass(frozen=True)
class IssuedToken:
    """A freshly minted token. ``text`` is shown to the admin once and then forgotten."""

    text: str
    token_id: str
    digest: bytes


def _digest(canonical: str) -> bytes:
    return hashlib.sha256(_DOMAIN + canonical.encode("ascii")).digest()


def format_token(canonical: str) -> str:
    """Group a 25-character token as ``XXXXX-XXXXX-XXXXX-XXXXX-XXXXX``."""
    return "-".join(canonical[i : i + 5] for i in range(0, len(canonical), 5))


def new_token() -> IssuedToken:
    """Mint a random token."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(ID_LEN + SECRET_LEN))
    canonical = body + check_character(body)
    return IssuedToken(format_token(canonical), canonical[:ID_LEN], _digest(canonical))


def parse_token(text: str) -> ParsedToken:
    """Normalise and check a typed token; raises :class:`TokenMalformed` saying what is wrong."""
    canonical = re.sub(r"[\s-]", "", text).upper().translate(_ALIASES)
    if len(canonical) != TOKEN_LEN:
        raise TokenMalformed(
            f"注册令牌应为 {TOKEN_LEN} 个字符 / an enrollment token has {TOKEN_LEN} characters "
            f"(5 groups of 5), this one has {len(canonical)}; copy it again from `mchub provision token create`"
        )
    bad = sorted({c for c in canonical if c not in _VALUE})
    if bad:
        raise TokenMalformed(f"注册令牌含无效字符 / the token contains characters it cannot have: {' '.join(bad)}")
    if check_character(canonical[:-1]) != canonical[-1]:
        raise TokenMalformed("注册令牌校验位不符 / the token's check character does not match: a character is mistyped")
    return ParsedToken(canonical[:ID_LEN], _digest(canonical))


def new_record(
    issued: IssuedToken,
    *,
    site_id: str,
    now_ms: int,
    lifetime_ms: int = DEFAULT_LIFETIME_MS,
    hub_serial: str | None = None,
    created_by: str = "",
) -> TokenRecord:
    """The row the cloud stores for a freshly minted token (digest only, never the text)."""
    if not 0 < lifetime_ms <= MAX_LIFETIME_MS:
        raise TokenMalformed(f"token lifetime must be between 1 s and 30 days, not {lifetime_ms / 1000:.0f} s")
    return TokenRecord(
        token_id=issued.token_id,
        digest=issued.digest,
        site_id=site_id,
        hub_serial=hub_serial,
        created_ms=now_ms,
        expires_ms=now_ms + lifetime_ms,
        created_by=created_by,
    )


def check_token(
    record: TokenRecord | None,
    token: ParsedToken,
    *,
    now_ms: int,
    key_fingerprint: str,
    site_id: str | None = None,
    hub_serial: str | None = None,
) -> bool:
    """Decide whether ``token`` may enroll the key ``key_fingerprint``.

    Returns ``True`` when the token was already used *by this same key* (a safe re-run:
    the caller answers with the earlier enrollment), ``False`` when it is fresh and valid.
    Raises the typed :class:`~provisioning.errors.TokenError` otherwise. A used token is
    judged before expiry, so a hub that retries after the token expired still gets its
    answer.
    """
    if record is None or not hmac.compare_digest(record.digest, token.digest):
        raise TokenUnknown(
            "注册令牌无效 / this enrollment token is not known to the cloud (never issued, cancelled, or "
            "mistyped); ask a central admin for a new one"
        )
    if record.used_ms is not None:
        if record.used_key is not None and hmac.compare_digest(record.used_key, key_fingerprint):
            return True
        raise TokenUsed(
            f"注册令牌已被使用 / token {record.token_id} was already used to enroll hub {record.used_by_hub}; "
            "a token enrolls one hub once: create a new token for this hub"
        )
    if now_ms >= record.expires_ms:
        raise TokenExpired(
            f"注册令牌已过期 / token {record.token_id} expired; create a new one with "
            f"`mchub provision token create --site {record.site_id}`"
        )
    if site_id is not None and site_id != record.site_id:
        raise TokenWrongSite(
            f"注册令牌属于其他机构 / token {record.token_id} is for site {record.site_id!r}, not {site_id!r}"
        )
    if record.hub_serial is not None and hub_serial != record.hub_serial:
        raise TokenWrongSerial(
            f"注册令牌绑定了其他设备序列号 / token {record.token_id} is bound to hub serial "
            f"{record.hub_serial!r}, this hub reports {hub_serial!r}"
        )
    return False


_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration(text: str) -> int:
    """``"90s"``, ``"30m"``, ``"24h"``, ``"7d"`` (or combinations like ``"1d12h"``) in milliseconds."""
    parts = re.fullmatch(r"(?:\d+[smhd])+", text.strip().lower())
    if not parts:
        raise RequestError(f"{text!r} is not a duration; write e.g. 90s, 30m, 24h or 7d")
    return sum(int(n) * _UNITS_MS[u] for n, u in re.findall(r"(\d+)([smhd])", text.lower()))
