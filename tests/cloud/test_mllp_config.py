"""[mllp] settings: the allow-list and limits are checked, and every [mllp] example in docs/ parses."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from cloud.config import EXAMPLE, mllp_networks, parse
from cloud.errors import ConfigError

P = Path("/etc/mchub/cloud.toml")
ROOT = Path(__file__).resolve().parents[2]
_TOML = re.compile(r"```toml\n(.*?)```", re.S)


def mllp_examples() -> list[tuple[str, str]]:
    """(doc file, toml block) for every toml block in docs/ and README.md that has an [mllp] table."""
    out = []
    for doc in sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md"]):
        for block in _TOML.findall(doc.read_text(encoding="utf-8")):
            if re.search(r"^\[mllp[\].]", block, re.M):
                out.append((doc.name, block))
    return out


EXAMPLES = mllp_examples()


def test_the_docs_have_mllp_examples() -> None:
    assert any(name == "hl7.md" for name, _ in EXAMPLES)


@pytest.mark.parametrize(("doc", "block"), EXAMPLES, ids=[f"{d}#{i}" for i, (d, _) in enumerate(EXAMPLES)])
def test_every_mllp_example_in_the_docs_parses(doc: str, block: str, tmp_path: Path) -> None:
    for name in re.findall(r'tls_(?:cert|key) = "([^"]+)"', block):  # examples name files next to cloud.toml
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("PEM")
    cfg = parse(block, tmp_path / "cloud.toml")
    assert cfg.mllp.port > 0


def test_defaults_listen_on_loopback_and_allow_only_loopback() -> None:
    m = parse(EXAMPLE, P).mllp
    assert m.host == "127.0.0.1" and not m.allow_any
    assert all(n.is_loopback for n in mllp_networks(m))


def test_an_open_port_must_say_who_may_send() -> None:
    with pytest.raises(ConfigError) as err:
        parse('[mllp]\nenabled = true\nhost = "0.0.0.0"\n', P)
    assert str(err.value).startswith(f"{P}: [mllp] allowed_senders") and "allow_any = true" in str(err.value)
    assert parse('[mllp]\nenabled = true\nhost = "0.0.0.0"\nallow_any = true\n', P).mllp.allow_any
    m = parse('[mllp]\nenabled = true\nhost = "0.0.0.0"\nallowed_senders = ["10.1.2.3", "10.1.5.0/24"]\n', P).mllp
    assert ipaddress.ip_address("10.1.5.77") in mllp_networks(m)[1]


@pytest.mark.parametrize(("text", "where", "fix"), [
    ('allowed_senders = ["10.1.2.300"]', "[mllp] allowed_senders", "CIDR"),
    ("allowed_senders = [10]", "[mllp] allowed_senders", "in quotes"),
    ('allowed_apps = ["|"]', "[mllp] allowed_apps", "MSH-3"),
    ("max_connections_per_source = 0", "[mllp] max_connections_per_source", "above 0"),
    ("frame_timeout_s = 0", "[mllp] frame_timeout_s", "above 0"),
    ('allowed_sender = ["10.1.2.3"]', "[mllp] allowed_sender", "allowed_senders"),
])
def test_errors_name_the_key_and_the_fix(text: str, where: str, fix: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(f"[mllp]\n{text}\n", P)
    assert str(err.value).startswith(f"{P}: {where}") and fix in str(err.value)
