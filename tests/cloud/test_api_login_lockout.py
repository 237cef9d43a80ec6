"""The bearer-token login (``POST /api/v1/admin/login``) tells nothing about whether a name exists.

An unknown name and an account get the same answers, attempt by attempt: 401 "wrong username or
password" four times, then 429 "locked" with a ``locked_until_ms`` — the same number of tries as
the sign-in page (``[web] max_failures``), the lock shared with it (``user:NAME``). Once locked,
even the right password and code are answered "locked", so the lock cannot be told apart either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cloud.fleet_support import PASSWORD, add_user, make_prov_cloud
from tests.cloud.web.support import WEB, running


def _shape(r: Any) -> tuple[int, dict[str, Any]]:
    """Status and body, with the lock's end time replaced by whether there is one (it is a clock value)."""
    body = dict(r.json())
    if "locked_until_ms" in body:
        body["locked_until_ms"] = isinstance(body["locked_until_ms"], int) and body["locked_until_ms"] > 0
    return r.status_code, body


async def test_an_unknown_name_and_an_account_get_the_same_answers_and_lock_alike(tmp_path: Path) -> None:
    prov = make_prov_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", extra_toml=WEB)
    await add_user(prov, "lin", "admin")
    async with running(prov.cfg) as cloud, cloud.client() as c:
        ok = await c.post(
            "/api/v1/admin/login", json={"username": "lin", "password": PASSWORD, "code": prov.code("lin")}
        )
        assert ok.status_code == 200 and ok.json()["token"]
        answers = {
            name: [
                _shape(
                    await c.post(
                        "/api/v1/admin/login", json={"username": name, "password": "Wrong-Horse-99", "code": "000000"}
                    )
                )
                for _ in range(6)
            ]
            for name in ("lin", "ghost")
        }
        assert answers["lin"] == answers["ghost"]
        assert [status for status, _ in answers["ghost"]] == [401, 401, 401, 401, 429, 429]
        assert answers["ghost"][0][1] == {
            "reason": "unauthorized",
            "message": "用户名或密码错误 / wrong username or password",
        }
        assert answers["ghost"][4][1]["reason"] == "locked" and answers["ghost"][4][1]["locked_until_ms"]
        # locked: the right password and code are refused the same way as any attempt at the unknown name
        right = await c.post(
            "/api/v1/admin/login", json={"username": "LIN", "password": PASSWORD, "code": prov.code("lin")}
        )
        assert _shape(right) == answers["ghost"][-1]
        # the sign-in page shares the name's lock
        page = await c.get("/ui/login")
        assert page.status_code == 200
        rows = await cloud.sql("SELECT key FROM web_login_locks ORDER BY key")
        assert [r["key"] for r in rows] == ["user:ghost", "user:lin"]
