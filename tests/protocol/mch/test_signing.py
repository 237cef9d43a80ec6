"""MCH platform request signing."""

from __future__ import annotations

import pytest

from protocol.mch.signing import SignatureError, mac, sign, verify

SECRET = b"platform-secret"


def test_sm3_hmac_uses_the_gb_t_32905_hash() -> None:
    # RFC 2104 HMAC over SM3; cross-checked: SM3("abc") is the standard's example digest
    from cryptography.hazmat.primitives import hashes

    h = hashes.Hash(hashes.SM3())
    h.update(b"abc")
    assert h.finalize().hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert mac(b"k", b"m", "HMAC-SM3") != mac(b"k", b"m", "HMAC-SHA256")


@pytest.mark.parametrize("algorithm", ["HMAC-SHA256", "HMAC-SM3"])
def test_sign_verify_round_trip(algorithm: str) -> None:
    headers = sign(app_key="app", secret=SECRET, method="POST", path="/api/cases", body=b"{}",
                   timestamp_ms=1_000_000, algorithm=algorithm, nonce="n1")  # type: ignore[arg-type]
    assert verify(headers, secret=SECRET, method="POST", path="/api/cases", body=b"{}", now_ms=1_000_500) == "n1"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"body": b"{ }"}, "does not match"),
        ({"path": "/api/other"}, "does not match"),
        ({"now_ms": 2_000_000}, "window"),
        ({"secret": b"other"}, "does not match"),
    ],
)
def test_tampering_is_refused(change: dict, match: str) -> None:
    headers = sign(app_key="app", secret=SECRET, method="POST", path="/api/cases", body=b"{}", timestamp_ms=1_000_000)
    args = {"secret": SECRET, "method": "POST", "path": "/api/cases", "body": b"{}", "now_ms": 1_000_000} | change
    with pytest.raises(SignatureError, match=match):
        verify(headers, **args)


def test_missing_headers_are_refused() -> None:
    with pytest.raises(SignatureError, match="missing"):
        verify({}, secret=SECRET, method="GET", path="/", body=b"", now_ms=0)
