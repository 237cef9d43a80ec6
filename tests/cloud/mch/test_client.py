"""The platform client over real HTTP against the platform simulator, faults included."""

from __future__ import annotations

import pytest

from cloud.mch.client import PermanentUpload, PlatformClient, RetryableUpload
from firmware_sim.mch_platform import Faults, Platform
from tests.support.asgi import serve

RECORD = {"caseNo": "c1", "recordVersion": 1, "orgCode": "s1", "personId": "p1", "screenDate": "2026-11-20",
          "hpvResult": "1"}


def client(url: str, **kw: object) -> PlatformClient:
    return PlatformClient(url, app_key="mchub", secret=b"platform-secret", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ["HMAC-SHA256", "HMAC-SM3"])
async def test_accepted_then_duplicate(algorithm: str) -> None:
    platform = Platform()
    async with serve(platform.app) as url:
        c = client(url, algorithm=algorithm)
        assert await c.upload("cervical", RECORD, case_id="c1", version=1) == "accepted"
        assert await c.upload("cervical", RECORD, case_id="c1", version=1) == "duplicate"
        await c.close()
    assert list(platform.state.accepted) == [("cervical", "c1")]


async def test_field_errors_are_permanent_with_the_platforms_words() -> None:
    async with serve(Platform().app) as url:
        c = client(url)
        with pytest.raises(PermanentUpload) as err:
            await c.upload("cervical", {**RECORD, "tbsResult": "5"}, case_id="c1", version=1)
        assert err.value.status == 422 and "colposcopyResult" in err.value.reason
        assert err.value.field_errors[0]["field"] == "colposcopyResult"
        bad_secret = PlatformClient(url, app_key="mchub", secret=b"wrong")
        with pytest.raises(PermanentUpload, match="401"):
            await bad_secret.upload("cervical", RECORD, case_id="c1", version=1)
        await c.close()
        await bad_secret.close()


async def test_outages_slowness_and_rate_limits_are_retryable() -> None:
    async with serve(Platform(faults=Faults(error_rate=1.0)).app) as url:
        c = client(url)
        with pytest.raises(RetryableUpload, match="503"):
            await c.upload("cervical", RECORD, case_id="c1", version=1)
        await c.close()
    async with serve(Platform(faults=Faults(slow_rate=1.0, slow_seconds=0.8)).app) as url:
        c = client(url, timeout_s=0.2)
        with pytest.raises(RetryableUpload, match="too slow"):
            await c.upload("cervical", RECORD, case_id="c1", version=1)
        await c.close()
    async with serve(Platform(rate_per_s=1).app) as url:
        c = client(url, rate_per_s=1000)  # our own limit set too high: the platform's 429 is retryable
        await c.upload("cervical", RECORD, case_id="c1", version=1)
        with pytest.raises(RetryableUpload) as err:
            await c.upload("cervical", {**RECORD, "caseNo": "c2"}, case_id="c2", version=1)
        assert err.value.status == 429 and err.value.retry_after == 1.0
        await c.close()
    async with serve(Platform().app) as url:
        pass
    c = client(url)  # nothing listens any more
    with pytest.raises(RetryableUpload, match="unreachable"):
        await c.upload("cervical", RECORD, case_id="c1", version=1)
    await c.close()
