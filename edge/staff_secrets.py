"""Staff PINs of the hub: how long they must be, and the 0600 files their hashes live in.

A staff user's scrypt hash lives in its own secret file (``[[web.users]] secret_file``,
mode 0600 in a 0700 directory), never in hub.toml, which more people may read: a copy of a
hash lets anyone try every 6-digit PIN offline. ``mchub edge hash-password --out FILE``
writes one; ``mchub edge move-secrets`` moves the inline ``secret_hash`` values of an older
hub.toml to such files and rewrites the keys (issue 17 finding 10).

A PIN has at least :data:`MIN_SECRET_CHARS` characters (6 digits, or a longer password):
checked when it is hashed and again at sign-in, where a shorter secret is refused before
any hash is computed (a hash does not reveal how long its PIN was).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from edge.errors import ConfigError
from provisioning.keyfiles import write_private_file

MIN_SECRET_CHARS = 6
SECRETS_DIR = "staff"  #: beside hub.toml
_INLINE = re.compile(r'^(?P<indent>[ \t]*)secret_hash[ \t]*=[ \t]*"(?P<hash>scrypt\$[^"\n]+)"[ \t]*$', re.MULTILINE)


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` may not be a staff PIN/password (None: it may)."""
    if len(secret) < MIN_SECRET_CHARS:
        return f"use at least {MIN_SECRET_CHARS} characters (a 6-digit PIN or a longer password)"
    return None


def write_secret_file(path: Path, secret_hash: str) -> None:
    """Store a hash in ``path`` (0600; its directory made 0700 when new), replacing an older one."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    write_private_file(path, secret_hash.encode("ascii") + b"\n", overwrite=True)


def move_inline_hashes(config_path: Path) -> list[Path]:
    """Move every inline ``secret_hash`` of hub.toml to ``staff/<name>.pin`` and point
    ``secret_file`` at it; hub.toml is rewritten atomically with mode 0600. Returns the files written."""
    from edge import config

    cfg = config.load(config_path)
    text = config_path.read_text(encoding="utf-8")
    written: list[Path] = []
    for user in cfg.web.users:
        if user.secret_file is not None:
            continue
        target = config_path.resolve().parent / SECRETS_DIR / f"{user.name}.pin"
        matches = [m for m in _INLINE.finditer(text) if m.group("hash") == user.secret_hash]
        if len(matches) != 1:
            raise ConfigError(str(config_path), f"web.users ({user.name}).secret_hash",
                              "is not written as one plain `secret_hash = \"...\"` line",
                              f"move it by hand: `mchub edge hash-password --out {target}`, then replace "
                              f'secret_hash by secret_file = "{SECRETS_DIR}/{user.name}.pin"')
        write_secret_file(target, user.secret_hash)
        m = matches[0]
        text = text[:m.start()] + f'{m.group("indent")}secret_file = "{SECRETS_DIR}/{user.name}.pin"' + text[m.end():]
        written.append(target)
    if written:
        write_private_file(config_path, text.encode("utf-8"), overwrite=True)
        os.chmod(config_path, 0o600)
    return written

