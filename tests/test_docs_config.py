"""Every ```toml block in the docs loads with the real configuration loaders.

A block is a hub.toml fragment when it configures stations (loaded by ``edge.config.load``,
every device then built by its driver as ``mchub edge check-config`` does), else a
cloud.toml fragment (``cloud.config.load``). A ``[[stations.devices]]`` fragment is put
under one ``[[stations]]`` table, as it sits in a real hub.toml.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_FENCE = re.compile(r"^(\s*)```\s*([\w-]*)\s*$")


def toml_blocks(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every ```toml block, its indentation removed."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence and fence.group(2) == "toml":
            indent, start, body = len(fence.group(1)), i + 1, []
            i += 1
            while not _FENCE.match(lines[i]):
                body.append(lines[i][indent:])
                i += 1
            yield start, "\n".join(body) + "\n"
        i += 1


BLOCKS = [(p.relative_to(ROOT).as_posix(), n, text) for p in sorted((ROOT / "docs").glob("*.md"))
          for n, text in toml_blocks(p)]


def test_the_docs_hold_config_blocks() -> None:
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize(("doc", "number", "text"), BLOCKS, ids=[f"{b[0]}:{b[1]}" for b in BLOCKS])
def test_documented_config_block_loads(doc: str, number: int, text: str, tmp_path: Path) -> None:
    from cloud import config as cloud_config
    from cloud.errors import CloudError
    from edge import config as edge_config
    from edge.config import validate_devices
    from edge.errors import EdgeError
    from provisioning.auth import hash_password

    path = tmp_path / "config.toml"
    hub_side = re.search(r"^\[\[?stations?\b", text, re.M) is not None or "[[web.users]]" in text
    # a secret_hash placeholder ("scrypt$15$8$1$…") stands for what `mchub edge hash-password` prints
    text = re.sub(r'"scrypt\$[^"]*…"', lambda _: f'"{hash_password("example-pin")}"', text)
    if text.lstrip().startswith("[[stations.devices]]"):
        text = '[[stations]]\nid = "room-1"\n' + text
    path.write_text(text, encoding="utf-8")
    # a staff secret file it names (relative to the config) is made as `mchub edge hash-password --out` makes it
    for name in re.findall(r'^secret_file\s*=\s*"([^"/][^"]*)"', text, re.M):
        secret = tmp_path / name
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text(hash_password("example-pin") + "\n", encoding="ascii")
        secret.chmod(0o600)
    try:
        if hub_side:
            validate_devices(edge_config.load(path))
        else:
            cloud_config.load(path)
    except (EdgeError, CloudError) as exc:
        pytest.fail(f"{doc}:{number}: this {'hub' if hub_side else 'cloud'}.toml block does not load:\n{exc}")
