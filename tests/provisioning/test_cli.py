"""`mchub provision` and the hub-side client over real HTTP, against the documented admin API.

The server is tests/provisioning/peer.py — a test implementation of docs/admin-api.md on
in-memory stores — under uvicorn on a loopback port.
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from mchub.cli import main
from provisioning import hubside, totp
from provisioning.ca import FleetCA
from provisioning.errors import ClientError
from tests.provisioning.conftest import PASSWORD, SECRET
from tests.provisioning.memory import MemoryAudit
from tests.provisioning.peer import PeerServer, PeerState
from tests.support.commands import parse_error, split


def _code(offset_steps: int = 0) -> str:
    return totp.totp(totp.decode_secret(SECRET), time.time() + 30 * offset_steps)


class Cli:
    """Runs `mchub provision ...` with a private session file; returns (exit code, stdout, stderr)."""

    def __init__(self, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.session = tmp / "session.json"
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["provision", *argv, "--session-file", str(self.session)])
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def json(self, *argv: str) -> object:
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path, capsys)


def _login(cli: Cli, url: str, tmp_path: Path, user: str = "alice", offset: int = 0) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    code, out, err = cli("login", "--cloud", url, "--user", user, "--password-file", str(pw), "--code", _code(offset))
    assert code == 0, err
    assert user in out


def test_ca_init_and_show(tmp_path: Path, cli: Cli) -> None:
    pass_file = tmp_path / "passphrase"
    pass_file.write_text("a long enough passphrase\n")
    ca_dir = tmp_path / "ca"
    code, out, err = cli("ca", "init", "--dir", str(ca_dir), "--passphrase-file", str(pass_file))
    assert code == 0, err
    assert stat.S_IMODE(ca_dir.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in ca_dir.iterdir())
    shown = cli.json("ca", "show", "--dir", str(ca_dir))
    assert isinstance(shown, dict) and shown["fingerprint_sha256"] in out and shown["key"] == "Ed25519"
    FleetCA.load(ca_dir, b"a long enough passphrase")
    code, _, err = cli("ca", "init", "--dir", str(ca_dir), "--passphrase-file", str(pass_file))
    assert code == 1 and "already exists" in err
    pass_file.write_text("short\n")
    code, _, err = cli("ca", "init", "--dir", str(tmp_path / "ca2"), "--passphrase-file", str(pass_file))
    assert code == 1 and "12" in err


def test_provision_a_hub_end_to_end_over_http(peer: tuple[PeerServer, PeerState], cli: Cli, tmp_path: Path) -> None:
    server, state = peer
    _login(cli, server.url, tmp_path)
    assert stat.S_IMODE(cli.session.stat().st_mode) == 0o600
    assert cli("site", "add", "dongcheng", "--name", "东城社区卫生服务中心")[0] == 0
    sites = cli.json("site", "list")
    assert sites == [{"site_id": "dongcheng", "name": "东城社区卫生服务中心", "created_ms": sites[0]["created_ms"]}]  # type: ignore[index]
    code, out, _ = cli("token", "create", "--site", "dongcheng", "--expires", "2h")
    assert code == 0 and "mchub edge enroll --cloud" in out
    token = out.split("--token ")[1].split()[0]
    printed = [argv for line in out.splitlines() if (argv := split(line.strip())) is not None]
    assert [a[:2] for a in printed] == [["edge", "enroll"]] and parse_error(printed[0]) is None  # runs as printed

    # the hub: keys made on the hub, state files 0600, re-run safe
    hub_dir = tmp_path / "hub"
    hub = hubside.enroll(server.url, token, hub_dir, hub_serial="PI-0001")
    assert hub.identity.hub_id == "dongcheng-h01"
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in hub_dir.iterdir())
    again = hubside.enroll(server.url, token, hub_dir, hub_serial="PI-0001")
    assert again.key.public_key() == hub.key.public_key() and again.identity == hub.identity
    loaded = hubside.load_state(hub_dir)
    assert loaded.mqtt.password == again.mqtt.password and loaded.config.version == 0

    # a device, picked up by the hub at its next sync
    code, out, err = cli("device", "add", "--hub", "dongcheng-h01", "--station", "1", "--kind", "ble-bp",
                         "--address", "AA:BB:CC:DD:EE:FF", "--option", "interval_s=5", "--label", "诊室1 血压计")
    assert code == 0, err
    signed, config = hubside.fetch_config(loaded)
    assert config.version == 1 and config.stations[0].devices[0].options == {"interval_s": 5}
    hubside.store_config(hub_dir, signed)
    assert hubside.load_state(hub_dir).config.version == 1
    devices = cli.json("device", "list", "--hub", "dongcheng-h01")
    assert devices["version"] == 1  # type: ignore[index]

    # rotate: both keys verify for the overlap
    hubside.rotate(hub_dir)
    rotated = hubside.load_state(hub_dir)
    assert rotated.key.public_key() != loaded.key.public_key()
    hubs = cli.json("hub", "list")
    assert [(h["hub_id"], h["status"], h["keys"]) for h in hubs] == [("dongcheng-h01", "active", 2)]  # type: ignore[union-attr,index]
    code, out, _ = cli("hub", "list")
    assert "dongcheng-h01" in out and "active" in out

    # revoke: every later request from the hub is refused, the record stays
    assert cli("hub", "revoke", "dongcheng-h01", "--reason", "设备丢失")[0] == 0
    with pytest.raises(ClientError) as refused:
        hubside.fetch_config(rotated)
    assert (refused.value.http_status, refused.value.remote_reason) == (403, "revoked")
    with pytest.raises(ClientError, match="revoked"):
        hubside.rotate(hub_dir)
    actions = [e["action"] for e in cli.json("audit")]  # type: ignore[union-attr]
    assert actions == ["admin.login", "site.add", "token.create", "hub.enroll", "hub.enroll.repeat", "device.add",
                       "hub.rotate", "hub.revoke"]
    assert isinstance(state.stores.audit, MemoryAudit)


def test_refusals_are_one_readable_line(peer: tuple[PeerServer, PeerState], cli: Cli, tmp_path: Path) -> None:
    server, _ = peer
    code, _, err = cli("hub", "list")
    assert code == 1 and "not signed in" in err
    pw = tmp_path / "pw"
    pw.write_text("wrong password\n")
    code, _, err = cli("login", "--cloud", server.url, "--user", "alice", "--password-file", str(pw),
                       "--code", "123456")
    assert code == 1 and "wrong username or password" in err and "Traceback" not in err
    _login(cli, server.url, tmp_path, user="ivan")
    code, _, err = cli("token", "create", "--site", "dongcheng")
    assert code == 1 and "may not do token:create" in err
    code, _, err = cli("token", "create", "--site", "dongcheng", "--expires", "soon")
    assert code == 1 and "not a duration" in err
    _login(cli, server.url, tmp_path, user="alice")
    cli("site", "add", "xicheng", "--name", "西城")
    code, _, err = cli("device", "add", "--hub", "nope", "--station", "1", "--kind", "ble-bp", "--address", "x")
    assert code == 1 and "no hub 'nope'" in err
    code, out, _ = cli("token", "create", "--site", "xicheng")
    token = out.split("--token ")[1].split()[0]
    hubside.enroll(server.url, token, tmp_path / "hub-a", hub_serial="PI-A")
    with pytest.raises(ClientError) as used:
        hubside.enroll(server.url, token, tmp_path / "hub-b", hub_serial="PI-B")
    assert used.value.remote_reason == "token_used" and "already used" in str(used.value)
    with pytest.raises(ClientError, match="cannot reach"):
        hubside.enroll("http://127.0.0.1:9", token, tmp_path / "hub-c", hub_serial="PI-C")


def test_unenrolled_hub_state_says_what_to_run(tmp_path: Path) -> None:
    from provisioning.errors import ProvisioningError

    with pytest.raises(ProvisioningError, match="mchub edge enroll"):
        hubside.load_state(tmp_path)


def test_empty_lists_say_so(peer: tuple[PeerServer, PeerState], cli: Cli, tmp_path: Path) -> None:
    """A listing with nothing in it says so in both languages and names the command that adds one."""
    server, _ = peer
    _login(cli, server.url, tmp_path)
    code, out, _ = cli("site", "list")
    assert code == 0 and "还没有机构 / no sites yet" in out and "mchub provision site add" in out
    code, out, _ = cli("hub", "list")
    assert code == 0 and "还没有登记的网关 / no hubs enrolled yet" in out and "mchub provision token create" in out
    assert cli("site", "add", "dongcheng", "--name", "东城社区卫生服务中心")[0] == 0
    code, out, _ = cli("token", "create", "--site", "dongcheng", "--expires", "2h")
    hubside.enroll(server.url, out.split("--token ")[1].split()[0], tmp_path / "hub", hub_serial="PI-0001")
    code, out, _ = cli("device", "list", "--hub", "dongcheng-h01")
    assert code == 0 and "此网关没有设备 / no devices on this hub" in out
