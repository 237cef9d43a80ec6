"""One site-id rule at every door: `mchub provision site add`, the admin API and (in
tests/cloud/web/test_admin.py) the admin web form all use :func:`provisioning.admin.check_site_id`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mchub.cli import main
from provisioning.admin import check_site_id
from provisioning.errors import ClientError, RequestError
from tests.cloud.fleet_support import add_user, call, login, make_prov_cloud
from tests.cloud.support import serving


def test_the_rule_refuses_upper_case_in_both_languages_and_proposes_the_lower_case_id() -> None:
    assert check_site_id("chengguan") == "chengguan"
    with pytest.raises(RequestError) as err:
        check_site_id("S001")
    text = str(err.value)
    assert "机构编号" in text and "lower case" in text and "'s001'" in text
    with pytest.raises(RequestError) as err:
        check_site_id("no spaces!")
    assert "use" not in str(err.value).split("letter or digit")[1]  # no proposal when lower case would not do


async def test_admin_api_and_cli_refuse_upper_case_and_accept_the_documented_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    prov = make_prov_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}")
    await add_user(prov, "alice", "admin")
    async with serving(prov.cfg) as url:
        alice = await login(prov, url, "alice")
        with pytest.raises(ClientError) as err:
            await call(alice, "POST", "/api/v1/admin/sites", {"site_id": "S001", "name": "城关镇卫生院"})
        assert err.value.http_status == 400 and "机构编号" in str(err.value) and "'s001'" in str(err.value)

        monkeypatch.setenv("MCHUB_ADMIN_TOKEN", str(alice.bearer))
        session = ["--cloud", url, "--session-file", str(tmp_path / "session.json")]
        code = await asyncio.to_thread(main, ["provision", "site", "add", "S001", "--name", "城关镇卫生院", *session])
        err_text = capsys.readouterr().err
        assert code == 1 and "机构编号" in err_text and "site id 'S001'" in err_text and "'s001'" in err_text
        # docs/operations.md §2 as printed
        code = await asyncio.to_thread(main, ["provision", "site", "add", "chengguan", "--name", "城关镇卫生院",
                                              *session])
        assert code == 0 and "chengguan" in capsys.readouterr().out
        sites = await call(alice, "GET", "/api/v1/admin/sites")
        assert [s["site_id"] for s in sites["sites"]] == ["chengguan"]
