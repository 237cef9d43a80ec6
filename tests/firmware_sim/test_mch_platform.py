"""The MCH platform simulator is strict, idempotent and fails on purpose when told to."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from firmware_sim.mch_platform import Faults, Platform
from protocol.mch.signing import sign

RECORD = {"caseNo": "c1", "recordVersion": 1, "orgCode": "s1", "personId": "p1", "screenDate": "2026-11-20",
          "hpvResult": "1"}


def client_for(platform: Platform) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=platform.app), base_url="http://platform")


async def post(client: httpx.AsyncClient, record: dict, kind: str = "cervical", algorithm: str = "HMAC-SHA256",
               secret: bytes = b"platform-secret", nonce: str | None = None) -> httpx.Response:
    body = json.dumps(record).encode()
    path = f"/api/v1/cases/{kind}"
    headers = sign(app_key="mchub", secret=secret, method="POST", path=path, body=body,
                   timestamp_ms=int(time.time() * 1000), algorithm=algorithm, nonce=nonce)  # type: ignore[arg-type]
    return await client.post(path, content=body, headers=headers)


@pytest.mark.parametrize("algorithm", ["HMAC-SHA256", "HMAC-SM3"])
async def test_accepts_once_then_reports_duplicates(algorithm: str) -> None:
    async with client_for(Platform()) as client:
        assert (await post(client, RECORD, algorithm=algorithm)).json() == {"status": "accepted"}
        assert (await post(client, RECORD, algorithm=algorithm)).json() == {"status": "duplicate"}
        assert (await post(client, {**RECORD, "recordVersion": 2})).json() == {"status": "accepted"}
        assert (await post(client, RECORD)).status_code == 409  # older than what it holds
        accepted = (await client.get("/api/v1/_accepted")).json()
        assert [(r["caseNo"], r["recordVersion"]) for r in accepted] == [("c1", 2)]


async def test_field_errors() -> None:
    async with client_for(Platform()) as client:
        response = await post(client, {**RECORD, "hpvResult": "7", "tbsResult": "5", "extra": 1})
        assert response.status_code == 422
        assert {e["field"] for e in response.json()["errors"]} == {"hpvResult", "extra", "colposcopyResult"}
        missing = {k: v for k, v in RECORD.items() if k != "screenDate"}
        assert (await post(client, missing)).json()["errors"] == [{"field": "screenDate", "message": "required"}]


async def test_bad_signature_and_replayed_nonce() -> None:
    async with client_for(Platform()) as client:
        assert (await post(client, RECORD, secret=b"wrong")).status_code == 401
        assert (await post(client, RECORD, nonce="n1")).status_code == 200
        replay = await post(client, {**RECORD, "caseNo": "c2"}, nonce="n1")
        assert replay.json()["message"] == "nonce already used"


async def test_rate_limit_and_injected_errors() -> None:
    async with client_for(Platform(rate_per_s=2)) as client:
        codes = [(await post(client, {**RECORD, "caseNo": f"c{i}"})).status_code for i in range(5)]
        assert codes[0] == 200 and 429 in codes
    async with client_for(Platform(faults=Faults(error_rate=1.0))) as client:
        assert (await post(client, RECORD)).status_code == 503
