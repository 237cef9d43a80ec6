"""Issue 17 findings 10 and 3 on the hub: staff PINs of 6+ digits in their own 0600 file,
escalating sign-in locks, and a staff session that ends when its PIN changes or its user goes.

The probe found the demo's 4-digit PIN hashed in a world-readable hub.toml (all 10,000 PINs in
about 15 minutes on one core) and a hub lock that never grew (480 guesses a day).
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import stat
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge import config
from edge.errors import ConfigError
from provisioning.auth import hash_password, verify_password
from tests.edge.web.conftest import PIN, client, csrf_from, sign_in
from tests.edge.web.hubproc import PIN as HUB_PIN
from tests.edge.web.hubproc import running_hub

ROOT = Path(__file__).resolve().parents[3]
KINDS = {"synthetic": object}


def mchub(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mchub", *args], input=stdin, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


def edit(path: Path, change: Callable[[str], str]) -> None:
    path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_pin_under_6_digits_is_refused_before_hashing(web_hub: tuple[Any, Any]) -> None:
    hub, app = web_hub
    async with client(app) as c:
        token = csrf_from((await c.get("/login")).text)
        r = await c.post("/login", data={"user": "nurse", "password": "2468", "csrf_token": token})
        assert r.status_code == 401 and "至少 6 位" in r.text
        r = await c.post("/login?lang=en", data={"user": "nurse", "password": "2468", "csrf_token": token})
        assert "at least 6 digits" in r.text
    assert any("PIN under 6" in a["detail"] for a in hub.reader.audit(10))


async def test_hub_locks_double_per_user_and_per_address(web_hub: tuple[Any, Any]) -> None:
    hub, app = web_hub
    throttle = hub.staff_login.throttle
    now = [1_000_000.0]
    throttle.clock = lambda: now[0]
    async with client(app) as c:
        token = csrf_from((await c.get("/login")).text)
        for minutes in (15, 30, 60):
            for _ in range(5):
                r = await c.post("/login", data={"user": "nurse", "password": "000000", "csrf_token": token})
                assert r.status_code == 401
            r = await c.post("/login", data={"user": "nurse", "password": PIN, "csrf_token": token})
            assert r.status_code == 429 and f"{minutes} 分钟" in r.text  # even the right PIN waits
            assert round(throttle.locked("user:nurse")) == round(throttle.locked("ip:127.0.0.1")) == minutes * 60
            now[0] += minutes * 60 + 1  # the lock ran out
        await sign_in(c)  # the right PIN after the lock: in, and the escalation is forgotten
    assert "user:nurse" not in throttle.locks


async def test_a_new_pin_or_a_removed_user_ends_the_open_staff_session(web_hub: tuple[Any, Any]) -> None:
    hub, app = web_hub
    path: Path = hub.cfg.path
    async with client(app) as c:
        await sign_in(c)
        assert (await c.get("/")).status_code == 200
        old = hub.cfg.web.users[0].secret_hash
        edit(path, lambda text: text.replace(old, hash_password("135792", log_n=10)))
        await hub.reload_config()  # what `kill -HUP` does
        r = await c.get("/")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        await sign_in(c, pin="135792")
        assert (await c.get("/")).status_code == 200
        edit(path, lambda text: text[:text.index("[[web.users]]")] + text[text.index("[storage]"):])
        await hub.reload_config()
        assert (await c.get("/")).status_code == 303


def write(tmp_path: Path, users: str) -> Path:
    p = tmp_path / "hub.toml"
    p.write_text(f"[web]\nport = 0\n{users}", encoding="utf-8")
    return p


def test_the_pin_hash_lives_in_its_own_0600_file(tmp_path: Path) -> None:
    done = mchub("edge", "hash-password", "--out", str(tmp_path / "staff" / "nurse.pin"), stdin="246813\n")
    assert done.returncode == 0, done.stderr
    secret = tmp_path / "staff" / "nurse.pin"
    assert mode(secret) == 0o600 and mode(secret.parent) == 0o700
    assert verify_password("246813", secret.read_text().strip()) and "246813" not in secret.read_text()
    cfg = config.load(write(tmp_path, '[[web.users]]\nname = "nurse"\nsecret_file = "staff/nurse.pin"\n'),
                      driver_kinds=lambda _p: KINDS)
    assert cfg.web.users[0].secret_file == secret and cfg.warnings == ()
    assert mchub("edge", "hash-password", stdin="2468\n").returncode == 2  # 4 digits: refused


@pytest.mark.parametrize(("setup", "users", "problem", "fix"), [
    (None, 'secret_file = "staff/nurse.pin"\n', "does not exist", "mchub edge hash-password --out"),
    (0o644, 'secret_file = "staff/nurse.pin"\n', "readable by others (mode 0644)", "chmod 600"),
    (0o600, 'secret_file = "staff/nurse.pin"\nsecret_hash = "scrypt$1$1$1$a$b"\n', "together with secret_hash",
     "secret_file"),
    (None, "", "is missing", "hash-password --out"),
])
def test_secret_file_errors_name_file_key_and_fix(tmp_path: Path, setup: int | None, users: str, problem: str,
                                                  fix: str) -> None:
    if setup is not None:
        (tmp_path / "staff").mkdir()
        (tmp_path / "staff" / "nurse.pin").write_text(hash_password("246813", log_n=10))
        (tmp_path / "staff" / "nurse.pin").chmod(setup)
    path = write(tmp_path, f'[[web.users]]\nname = "nurse"\n{users}')
    with pytest.raises(ConfigError) as err:
        config.load(path, driver_kinds=lambda _p: KINDS)
    assert err.value.file == str(path) and err.value.key == "web.users[0].secret_file"
    assert problem in err.value.problem and fix in err.value.fix


def test_an_inline_hash_still_works_with_a_warning_and_move_secrets_moves_it(tmp_path: Path) -> None:
    inline = hash_password("246813", log_n=10)
    path = write(tmp_path, f'[[web.users]]\nname = "nurse"\nsecret_hash = "{inline}"\n'
                           f'[[web.users]]\nname = "li.na"\nsecret_hash = "{hash_password("975310", log_n=10)}"\n')
    path.chmod(0o644)
    cfg = config.load(path, driver_kinds=lambda _p: KINDS)
    assert cfg.web.users[0].secret_hash == inline
    [warning, _] = cfg.warnings
    assert str(path) in warning and "web.users[0].secret_hash" in warning and "mchub edge move-secrets" in warning
    done = mchub("edge", "move-secrets", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert "2 PIN hash(es) moved" in done.stdout
    text = path.read_text()
    assert "secret_hash" not in text and 'secret_file = "staff/nurse.pin"' in text and mode(path) == 0o600
    assert mode(tmp_path / "staff" / "nurse.pin") == 0o600 and mode(tmp_path / "staff") == 0o700
    after = config.load(path, driver_kinds=lambda _p: KINDS)
    assert after.warnings == () and after.web.users[0].secret_hash == inline
    assert verify_password("975310", after.web.users[1].secret_hash)


def test_a_real_hub_process_reads_its_pin_file_and_locks_over_http(tmp_path: Path) -> None:
    """`mchub edge run` with a secret_file: the right PIN signs in over real HTTP, a short one is refused,
    and the hub's own files (database, WAL, console token, log lines) are private to its user."""
    with running_hub(tmp_path / "hub") as hub:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

        def post(pin: str) -> tuple[int, str]:
            token = re.search(r'name="csrf_token" value="([^"]+)"',
                              opener.open(f"{hub.url}/login").read().decode())
            assert token
            body = urllib.parse.urlencode({"user": "nurse", "password": pin, "csrf_token": token.group(1)}).encode()
            try:
                with opener.open(f"{hub.url}/login", data=body) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode()

        assert post("2468")[0] == 401
        status, page = post(HUB_PIN)
        assert status == 200 and 'class="watermark"' in page  # redirected to the status page, signed in
        private = {p.name: mode(p) for p in hub.data_dir.iterdir() if p.is_file()}
        assert "hub.db" in private and all(m == 0o600 for m in private.values()), private
        assert mode(hub.data_dir) == 0o700
