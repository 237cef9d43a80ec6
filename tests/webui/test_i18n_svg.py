"""Catalogs are complete in both languages; charts are well-formed SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from webui.i18n import Catalog, choose_language
from webui.svg import bar_chart, line_chart


def test_every_message_exists_in_both_languages() -> None:
    assert Catalog().missing() == {}


def test_translation_and_fallback() -> None:
    c = Catalog()
    assert c.t("login.locked", "en", minutes=15) == "Too many attempts; try again in 15 minutes"
    assert c.t("login.title") == "登录"
    assert c.t("no.such.key", "en") == "no.such.key"


def test_language_choice() -> None:
    assert choose_language(None, None, None) == "zh-CN"
    assert choose_language(None, None, "en-US,en;q=0.9") == "en"
    assert choose_language(None, "en", "zh-CN") == "en"
    assert choose_language("zh-CN", "en", "en") == "zh-CN"
    assert choose_language("fr", None, "fr-FR") == "zh-CN"


def test_charts_are_valid_svg_and_escape_labels() -> None:
    for svg in (line_chart([("09:00", 3), ("10:00", 7), ("<script>", 1)], title="sync <lag>"),
                bar_chart([("AA", 10), ("AE", 2), ("AR", 0)], title="ACK"), line_chart([], title="empty")):
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg")
    assert "<script>" not in line_chart([("<script>", 1)], title="x")
