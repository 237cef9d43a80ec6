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


def test_every_unit_a_code_can_carry_has_words_for_people() -> None:
    """Pages show mmHg, 次/分, °C, 公斤 ... (UCUM only on the wire and in exports): every canonical
    unit of protocol.codes has a catalog entry in both languages."""
    from edge.web import LOCALES
    from protocol import codes
    from webui.i18n import catalog

    cat = catalog(LOCALES)
    for lang in ("zh-CN", "en"):
        missing = {c.unit for c in codes.CODES.values()} - {k[5:] for k in cat.messages[lang] if k.startswith("unit.")}
        assert not missing, (lang, missing)
