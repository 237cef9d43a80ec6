"""The MQTT broker's password file: replaced atomically (mode and owner kept), then the broker reloaded,
so an enrolled hub can log in and a revoked one cannot (docs/provisioning.md)."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

log = logging.getLogger("mchub.cloud.fleet")


def replace_and_reload(path: Path, text: str, reload: tuple[str, ...]) -> bool:
    tmp = path.with_name(path.name + ".tmp")
    try:
        old = path.stat() if path.exists() else None
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, old.st_mode & 0o777 if old else 0o644)
        if old is not None and (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
            os.chown(tmp, old.st_uid, old.st_gid)
        os.replace(tmp, path)
    except OSError as exc:
        log.error("cannot write the MQTT password file %s: %s", path, exc)
        return False
    if not reload:
        return True
    try:
        subprocess.run(list(reload), check=True, timeout=30, capture_output=True)
    except (OSError, subprocess.SubprocessError) as exc:
        log.error("MQTT broker reload %s failed: %s; revoked hubs keep their MQTT login until it works",
                  " ".join(reload), exc)
        return False
    return True
