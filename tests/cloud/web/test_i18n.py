"""Every text on the cloud pages exists in zh-CN and English."""

from __future__ import annotations

import re
from pathlib import Path

from cloud.web.registers import REGISTERS
from cloud.web.shell import HERE, RENDER, ROLES

KEY = re.compile(r"""\bt\(["']([a-z][a-z0-9_.]*[a-z0-9_])["']""")


def test_catalogs_are_complete_and_cover_every_template_key() -> None:
    assert RENDER.catalog.missing() == {}
    sources = [*Path(HERE / "templates").glob("*.html"), *HERE.glob("*.py")]
    used = {k for p in sources for k in KEY.findall(p.read_text(encoding="utf-8"))}
    dynamic = ({f"role.{r}" for r in ROLES} | {f"register.{n}" for n in REGISTERS}
               | {f"queue.{q}" for q in ("sync", "his", "mch")} | {f"age.{u}" for u in ("s", "min", "h", "d")})
    for lang in ("zh-CN", "en"):
        missing = sorted(k for k in used | dynamic if "." in k and k not in RENDER.catalog.messages[lang])
        assert not missing, (lang, missing)
