"""The hub's catalogs are complete in zh-CN and English and cover every key its templates use."""

from __future__ import annotations

import re

from edge.web import LOCALES, TEMPLATES
from webui.i18n import Catalog, catalog


def test_every_hub_message_exists_in_both_languages() -> None:
    assert Catalog().load_dir(LOCALES).missing() == {}


def test_every_literal_key_of_the_templates_is_translated() -> None:
    c = catalog(LOCALES)
    keys = {k for path in TEMPLATES.glob("*.html") for k in re.findall(r't\("([\w.]+)"', path.read_text("utf-8"))
            if not k.endswith(".")}
    assert keys and not [k for k in keys if k not in c.messages["zh-CN"] or k not in c.messages["en"]]
    for prefix in ("status.closed.", "kiosk.overall.", "meaning.bp."):
        assert any(k.startswith(prefix) for k in c.messages["en"])
