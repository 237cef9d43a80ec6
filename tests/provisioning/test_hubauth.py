"""Signed hub requests (config fetch): headers, clock skew, wrong key, revoked hub."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from provisioning.errors import HubRevoked, RequestError, UnknownHub, UnknownKey
from provisioning.hubauth import BadHubSignature, parse_headers, sign_request, verify_request
from provisioning.hubs import revoke_hub
from tests.provisioning.conftest import NOW, Cloud

PATH = "/api/v1/hub/config"


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


async def test_signed_request_round_trip_and_refusals(cloud: Cloud) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    hub_id = (await cloud.enroll(key, await cloud.token())).hub_id
    hub = await cloud.stores.hubs.get(hub_id)
    headers = _lower(sign_request(key, hub_id=hub_id, method="GET", path=PATH, body=b"", now_ms=NOW))
    signed = parse_headers(headers)
    assert verify_request(signed, hub, method="get", path=PATH, body=b"", now_ms=NOW + 60_000) is hub

    with pytest.raises(BadHubSignature, match="5 minutes"):
        verify_request(signed, hub, method="GET", path=PATH, body=b"", now_ms=NOW + 6 * 60_000)
    with pytest.raises(BadHubSignature, match="does not verify"):
        verify_request(signed, hub, method="GET", path="/api/v1/other", body=b"", now_ms=NOW)
    with pytest.raises(BadHubSignature, match="does not verify"):
        verify_request(signed, hub, method="GET", path=PATH, body=b"x", now_ms=NOW)
    other = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(UnknownKey):
        verify_request(parse_headers(_lower(sign_request(other, hub_id=hub_id, method="GET", path=PATH, body=b"",
                                                         now_ms=NOW))), hub, method="GET", path=PATH, body=b"",
                       now_ms=NOW)
    with pytest.raises(UnknownHub):
        verify_request(signed, None, method="GET", path=PATH, body=b"", now_ms=NOW)
    with pytest.raises(RequestError):
        parse_headers({"x-mchub-hub": hub_id})
    revoked = await revoke_hub(cloud.stores, hub_id, actor="alice", reason="test", now_ms=NOW)
    with pytest.raises(HubRevoked):
        verify_request(signed, revoked, method="GET", path=PATH, body=b"", now_ms=NOW)
