"""The sign-in form's messages (docs/dashboard.md "Sign-in messages"), over HTTP in both languages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cloud.support import make_cloud
from tests.cloud.web.support import PASSWORD, WEB, code, csrf, running


@pytest.fixture
async def cloud(tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg, _ = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", extra_toml=WEB)
    async with running(cfg) as c:
        yield c


async def _try(c: Any, name: str, password: str, one_time: str, lang: str = "zh-CN") -> Any:
    token = await csrf(c)
    return await c.post(f"/ui/login?lang={lang}", data={"user": name, "password": password, "totp": one_time,
                                                         "csrf_token": token, "next": "/ui/"})


def _message(r: Any) -> str:
    return str(r.text.split('class="error" role="alert">')[1].split("</p>")[0].strip())


async def test_a_reused_code_and_a_wrong_code_are_named_after_the_right_password(cloud: Any) -> None:
    secret = await cloud.user("lin", "integration")
    # one code, taken once: asking for "the current code" again could cross into the next 30-s step (a fresh,
    # unused code: a clean-clone CI run at load 12-21 signed in with it instead of being refused)
    used = code(secret)
    async with cloud.client() as c:
        assert (await _try(c, "lin", PASSWORD, used)).status_code == 303
    async with cloud.client() as c:
        reused = await _try(c, "lin", PASSWORD, used)
        assert reused.status_code == 401 and _message(reused) == "此动态码已用过，请等待验证器显示下一个再登录。"
        en = await _try(c, "lin", PASSWORD, used, lang="en")
        assert "already used; wait for the next one" in _message(en)
        wrong = await _try(c, "lin", PASSWORD, "000000")
        assert "密码正确，但动态码不正确" in _message(wrong)
        wrong_pw = await _try(c, "lin", "Wrong-Horse-99", code(secret, 1))
        assert _message(wrong_pw) == "用户名或密码错误"


async def test_an_unknown_name_locks_like_an_account_so_the_lock_tells_nothing(cloud: Any) -> None:
    await cloud.user("lin", "integration")
    answers: dict[str, list[tuple[int, str]]] = {}
    for name in ("lin", "ghost"):
        async with cloud.client() as c:
            answers[name] = [((r := await _try(c, name, "Wrong-Horse-99", "000000")).status_code, _message(r))
                             for _ in range(6)]
    assert answers["lin"] == answers["ghost"]
    assert answers["ghost"][0] == (401, "用户名或密码错误")
    assert answers["ghost"][-1][0] == 429 and "尝试次数过多" in answers["ghost"][-1][1]
