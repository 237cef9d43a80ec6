"""Every text on the cloud pages exists in zh-CN and English."""

from __future__ import annotations

import re
from pathlib import Path

from cloud.integration import message_browser as mb
from cloud.web.messages import REASONS
from cloud.web.registers import REGISTERS
from cloud.web.shell import HERE, RENDER, ROLES

KEY = re.compile(r"""\bt\(["']([a-z][a-z0-9_.]*[a-z0-9_])["']""")


def _message_browser_keys() -> set[str]:
    """Keys the message browser builds from a source, state or reason code."""
    keys = {f"msg.state.{s}" for states in mb.STATES.values() for s in states}
    keys |= {f"msg.reason.{r}" for r in (*REASONS, "receiver", "other")}
    for src in mb.SOURCES:
        keys |= {f"msg.{part}.{src}" for part in ("source", "control_id", "peer", "help")}
    keys |= {f"msg.{part}.{src}" for part in ("send_again", "send_again_one", "send_again_help")
             for src in mb.TOPICS.keys() | {"hl7_in"}}
    return keys


def test_catalogs_are_complete_and_cover_every_template_key() -> None:
    assert RENDER.catalog.missing() == {}
    sources = [*Path(HERE / "templates").glob("*.html"), *HERE.glob("*.py")]
    used = {k for p in sources for k in KEY.findall(p.read_text(encoding="utf-8"))}
    dynamic = ({f"role.{r}" for r in ROLES} | {f"register.{n}" for n in REGISTERS}
               | {f"queue.{q}" for q in ("sync", "his", "mch")} | {f"age.{u}" for u in ("s", "min", "h", "d")}
               | _message_browser_keys())
    for lang in ("zh-CN", "en"):
        missing = sorted(k for k in used | dynamic if "." in k and k not in RENDER.catalog.messages[lang])
        assert not missing, (lang, missing)
