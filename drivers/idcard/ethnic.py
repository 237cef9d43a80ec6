"""GB 3304-1991 ethnic group codes as printed on the resident ID card (zh and romanised).

The card stores the two-digit code; the card face prints the Chinese name without 族.
Sources: GB 3304-1991 romanisation, cross-checked with the tables in
qiwenming/IDCardDemo (README) and HslCommunication ``SAMSerial.GetNationText``.

>>> ethnic_name("01"), ethnic_name("01", "en")
('汉族', 'Han')
>>> ethnic_name("5")
'维吾尔族'
"""

from __future__ import annotations

_TABLE = """\
01 汉 Han|02 蒙古 Mongol|03 回 Hui|04 藏 Zang|05 维吾尔 Uygur|06 苗 Miao|07 彝 Yi|08 壮 Zhuang
09 布依 Buyei|10 朝鲜 Chosen|11 满 Man|12 侗 Dong|13 瑶 Yao|14 白 Bai|15 土家 Tujia|16 哈尼 Hani
17 哈萨克 Kazak|18 傣 Dai|19 黎 Li|20 傈僳 Lisu|21 佤 Va|22 畲 She|23 高山 Gaoshan|24 拉祜 Lahu
25 水 Sui|26 东乡 Dongxiang|27 纳西 Naxi|28 景颇 Jingpo|29 柯尔克孜 Kirgiz|30 土 Tu|31 达斡尔 Daur
32 仫佬 Mulao|33 羌 Qiang|34 布朗 Blang|35 撒拉 Salar|36 毛南 Maonan|37 仡佬 Gelao|38 锡伯 Xibe
39 阿昌 Achang|40 普米 Pumi|41 塔吉克 Tajik|42 怒 Nu|43 乌孜别克 Uzbek|44 俄罗斯 Russ|45 鄂温克 Ewenki
46 德昂 Deang|47 保安 Bonan|48 裕固 Yugur|49 京 Gin|50 塔塔尔 Tatar|51 独龙 Derung|52 鄂伦春 Oroqen
53 赫哲 Hezhen|54 门巴 Monba|55 珞巴 Lhoba|56 基诺 Jino"""

#: code -> (zh, en)
ETHNIC_GROUPS: dict[str, tuple[str, str]] = {
    code: (zh + "族", en)
    for entry in _TABLE.replace("\n", "|").split("|")
    for code, zh, en in [entry.split()]
}
ETHNIC_GROUPS["97"] = ("其他", "Other")
ETHNIC_GROUPS["98"] = ("外国血统中国籍人士", "Naturalised citizen of foreign origin")


def normalise_code(code: str) -> str | None:
    """Two-digit code for ``code`` (``"1"`` -> ``"01"``), or None when it is not in the table."""
    code = code.strip()
    if not (code.isascii() and code.isdigit()) or len(code) > 2:
        return None
    code = code.zfill(2)
    return code if code in ETHNIC_GROUPS else None


def ethnic_name(code: str, lang: str = "zh") -> str:
    """Name of the ethnic group; raises KeyError for an unknown code."""
    norm = normalise_code(code)
    if norm is None:
        raise KeyError(f"unknown GB 3304 ethnic code {code!r}")
    zh, en = ETHNIC_GROUPS[norm]
    return en if lang == "en" else zh
