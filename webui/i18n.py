"""Message catalogs: zh-CN is the default language, English is available everywhere.

Catalogs are TOML files ``locales/<lang>.toml`` (key = message); a package adds its own
with :func:`Catalog.load_dir`. A missing translation falls back to zh-CN, then to the key
itself, so a page never breaks — and ``missing()`` lets a test insist on completeness.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("zh-CN", "en")
DEFAULT = "zh-CN"


class Catalog:
    """Messages per language."""

    def __init__(self) -> None:
        self.messages: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}
        self.load_dir(Path(__file__).resolve().parent / "locales")

    def load_dir(self, directory: Path) -> Catalog:
        """Merge ``<lang>.toml`` files from ``directory`` (later loads win)."""
        for lang in LANGUAGES:
            path = directory / f"{lang}.toml"
            if path.exists():
                self.messages[lang].update(tomllib.loads(path.read_text(encoding="utf-8")))
        return self

    def t(self, key: str, lang: str = DEFAULT, **values: object) -> str:
        """The message ``key`` in ``lang`` with ``{name}`` placeholders filled."""
        text = self.messages.get(lang, {}).get(key) or self.messages[DEFAULT].get(key) or key
        return text.format(**values) if values else text

    def missing(self) -> dict[str, set[str]]:
        """Keys present in one language but not the other."""
        keys = [set(m) for m in self.messages.values()]
        every = set().union(*keys)
        return {lang: every - set(m) for lang, m in self.messages.items() if every - set(m)}


@lru_cache(maxsize=8)
def catalog(*directories: Path) -> Catalog:
    """The shared catalog plus the catalogs of ``directories`` (cached: load once per process).

    What a package uses outside a web page, e.g. the hub's console texts::

        t = catalog(EDGE_LOCALES).t
        t("console.queue", "en")
    """
    c = Catalog()
    for d in directories:
        c.load_dir(d)
    return c


def choose_language(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """``?lang=`` beats the ``lang`` cookie beats Accept-Language; default zh-CN."""
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT
