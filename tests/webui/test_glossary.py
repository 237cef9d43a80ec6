"""zh-CN texts use the glossary's terms (docs/glossary.md) and no untranslated English.

Every message of the hub's and the cloud's catalogs (the shared webui catalog included) is
rendered in zh-CN as the pages get it; a value fails when it holds a word the glossary
refuses (集线器 for the hub, 工位/站点 for station and site, …) or an English word outside the
allow-list of brand names, standards, units, commands and example ids. Whole pages rendered
in zh-CN (the message detail, work list, message list, devices page) go through the same
checker in tests/cloud/web/test_pages_zh.py.
"""

from __future__ import annotations

import re

import pytest

from cloud.web.shell import HERE as CLOUD_WEB
from edge.web import LOCALES as EDGE_LOCALES
from webui.i18n import catalog

#: glossary "not" column: the word -> the term to use
REFUSED = {"集线器": "网关", "工位": "测量台", "站点": "机构", "登记册": "登记表"}
#: English allowed in zh-CN text (docs/glossary.md, "English words allowed")
ALLOWED = {
    "mchub", "Excel", "Chromium", "mmHg", "kg", "cm", "kJ", "MB", "PIN", "ID", "URL", "API", "HL7", "DICOM", "MLLP",
    "HIS", "LIS", "ACK",
    "PACS", "MCH", "HPV", "VIA", "VILI", "CIN", "TOTP", "CSV", "XLSX", "JSON", "MQTT", "BLE", "dongcheng", "X",
    "English",  # the language switch names the other language in that language
    "DICOMweb", "HTTP", "Basic", "Bearer", "Authorization",  # protocol and HTTP header names (STOW-RS senders)
}
_COMMAND = re.compile(r"mchub(?: [a-z][\w.-]*)+")  # a command line, e.g. mchub edge hash-password
_CODE = re.compile(r"\{[^}]*\}|\[\[?[\w.]+\]\]?|\b[\w-]+\.toml\b"  # placeholders, [[tables]], file names
                   r"|\b[\w]+-(?=[、，）)\s]|$)|\b[A-Z][\w]*-\d+\b|BI-RADS|°C")  # kind prefixes, MSH-10, units
_WORD = re.compile(r"(?<![\w.-])[A-Za-z]+(?![\w.-])")

CATALOGS = {"edge": catalog(EDGE_LOCALES), "cloud": catalog(CLOUD_WEB / "locales")}


def english_words(text: str) -> list[str]:
    """English words in a zh-CN text, after taking out commands, placeholders, file names and codes."""
    rest = _CODE.sub(" ", _COMMAND.sub(" ", text))
    return [w for w in _WORD.findall(rest) if w not in ALLOWED]


def test_the_checker_finds_english_and_lets_codes_pass() -> None:
    assert english_words("cloud unreachable: 连接失败") == ["cloud", "unreachable"]
    assert english_words("未完成: the check character of the ID number is wrong")[:2] == ["the", "check"]
    assert english_words("用 mchub edge hash-password 生成哈希，写入 hub.toml 的 [[web.users]]") == []
    assert english_words("HL7 消息控制号（MSH-10）；类型前缀（ble-、modbus-rtu-）；{n} 条；119 mmHg") == []


@pytest.mark.parametrize("side", sorted(CATALOGS))
def test_zh_cn_catalog_uses_the_glossary_and_no_untranslated_english(side: str) -> None:
    messages = CATALOGS[side].messages["zh-CN"]
    assert len(messages) > 50
    problems = []
    for key in sorted(messages):
        text = CATALOGS[side].t(key, "zh-CN")  # what a page shows (placeholders stay as written)
        problems += [f"{key}: {word!r} — the glossary says {REFUSED[word]}" for word in REFUSED if word in text]
        if english := english_words(text):
            problems.append(f"{key}: English {english} in {text!r}")
    assert not problems, f"{side} zh-CN catalog:\n" + "\n".join(problems)


def test_the_hub_status_page_is_called_by_the_glossary_name() -> None:
    assert CATALOGS["edge"].t("status.title", "zh-CN") == "网关状态"
    assert CATALOGS["cloud"].t("col.station", "zh-CN") == "测量台"


@pytest.mark.parametrize("side", sorted(CATALOGS))
def test_english_catalog_has_no_chinese_left(side: str) -> None:
    """The other direction: an English page shows no Chinese, except the switch back to 中文."""
    messages = CATALOGS[side].messages["en"]
    left = {k: v for k, v in messages.items() if k != "lang.switch" and re.search(r"[\u4e00-\u9fff]", v)}
    assert not left
