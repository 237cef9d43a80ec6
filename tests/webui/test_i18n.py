"""Catalogs are complete in both languages; the language choice."""

from __future__ import annotations

from webui.i18n import Catalog, choose_language


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

