"""Laboratory results for people: the display name of a result code, its reference range, its flag.

Hospitals send ``OBX|3|NM|718-7^Hb^LN||9.8|g/dL|11.5-15.0|L``; a screen should say
"血红蛋白 9.8 g/dL ↓ (11.5-15.0)", not "hl7 718-7 9.8 g/dL". The names come from the
observation table of :mod:`protocol.codes` (vitals) and from :data:`LAB_NAMES` (the laboratory
and screening codes the clinics' HIS/LIS send, LOINC display names); an unknown code keeps the
text the sender gave in OBX-3.2. The flag is the sender's OBX-8 (HL7 table 0078) when it sent
one, else derived from the reference range it sent (``low-high``, ``<x``, ``>x``).

>>> display_name("718-7", "zh-CN"), display_name("L:XYZ", "en", sent="Ferritin")
('血红蛋白', 'Ferritin')
>>> parse_range("11.5-15.0"), parse_range("<5.6"), parse_range("阴性")
((11.5, 15.0), (None, 5.6), None)
>>> flag("9.8", "11.5-15.0"), flag("128", "115-150"), flag("7", "115-150", sent=("H",))
('L', 'N', 'H')
>>> unit_symbol("10*9/L"), unit_symbol("umol/L"), unit_symbol("g/L")
('×10⁹/L', 'µmol/L', 'g/L')
"""

from __future__ import annotations

import re

from protocol import codes

#: LOINC code -> (zh-CN, en) display names of the laboratory and screening results clinics receive
LAB_NAMES: dict[str, tuple[str, str]] = {
    "718-7": ("血红蛋白", "Hemoglobin"),
    "789-8": ("红细胞计数", "Erythrocytes"),
    "6690-2": ("白细胞计数", "Leukocytes"),
    "777-3": ("血小板计数", "Platelets"),
    "4544-3": ("红细胞压积", "Hematocrit"),
    "2345-7": ("葡萄糖", "Glucose"),
    "1558-6": ("空腹血糖", "Fasting glucose"),
    "4548-4": ("糖化血红蛋白", "Hemoglobin A1c"),
    "2093-3": ("总胆固醇", "Cholesterol"),
    "2571-8": ("甘油三酯", "Triglyceride"),
    "1742-6": ("丙氨酸氨基转移酶", "ALT"),
    "1920-8": ("天门冬氨酸氨基转移酶", "AST"),
    "2160-0": ("肌酐", "Creatinine"),
    "3094-0": ("尿素氮", "Urea nitrogen"),
    "1751-7": ("白蛋白", "Albumin"),
    "3016-3": ("促甲状腺激素", "Thyrotropin (TSH)"),
    "5196-1": ("乙肝表面抗原", "Hepatitis B surface antigen"),
    "5811-5": ("尿比重", "Urine specific gravity"),
    "2888-6": ("尿蛋白", "Urine protein"),
    "21440-3": ("人乳头瘤病毒 (HPV) DNA", "HPV DNA"),
    "30167-1": ("高危型 HPV", "HPV high risk"),
    "59263-4": ("HPV 16 型", "HPV 16"),
    "59420-0": ("HPV 18 型", "HPV 18"),
    "77379-6": ("高危型 HPV（其他型）", "HPV high risk, other types"),
    "77399-4": ("HPV 16/18 型", "HPV 16 and 18"),
    "10524-7": ("宫颈细胞学", "Cervical cytology"),
    "19762-4": ("宫颈细胞学总体分类", "Cytology general categorization"),
    "47527-7": ("宫颈细胞学 (TBS)", "Cytology (Bethesda)"),
    "19764-0": ("宫颈细胞学诊断", "Cytology statement of diagnosis"),
    "22637-3": ("病理诊断", "Pathology report diagnosis"),
    "33746-9": ("病理诊断", "Pathology diagnosis"),
    "60567-5": ("病理报告", "Pathology report"),
    "BIRADS-US": ("乳腺超声 BI-RADS", "Breast ultrasound BI-RADS"),
    "BIRADS-MG": ("乳腺 X 线 BI-RADS", "Mammography BI-RADS"),
}
#: HL7 table 0078 abnormal flags a screen shows (others, e.g. "N" or "", mean nothing to mark)
ABNORMAL = ("L", "LL", "H", "HH", "A", "AA", "<", ">")
_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_RANGE = re.compile(rf"\s*({_NUMBER})\s*(?:-|–|~|～|至)\s*({_NUMBER})\s*")
_BOUND = re.compile(rf"\s*(<=?|≤|>=?|≥)\s*({_NUMBER})\s*")


def display_name(code: str, lang: str, sent: str = "") -> str:
    """The name people read for a result code (zh-CN or en); ``sent`` (OBX-3.2) when the tables lack it."""
    zh_en = LAB_NAMES.get(code)
    known = codes.CODES.get(code)
    if known is not None:
        zh_en = (known.zh, known.en)
    if zh_en is not None:
        return zh_en[0] if lang == "zh-CN" else zh_en[1]
    return sent or code


def parse_range(text: str) -> tuple[float | None, float | None] | None:
    """``(low, high)`` of a numeric reference range (either may be None: ``<5.6``); None if not numeric."""
    if m := _RANGE.fullmatch(text or ""):
        low, high = float(m.group(1)), float(m.group(2))
        return (low, high) if low <= high else None
    if m := _BOUND.fullmatch(text or ""):
        bound = float(m.group(2))
        return (None, bound) if m.group(1)[0] in "<≤" else (bound, None)
    return None


def flag(value: str, reference_range: str, sent: tuple[str, ...] = ()) -> str | None:
    """The abnormal flag to show: the sender's first OBX-8 flag, else L/H/N from the range; None when unknown."""
    for f in sent:
        if f.strip():
            return f.strip().upper()
    bounds = parse_range(reference_range)
    try:
        number = float(value)
    except ValueError:
        return None
    if bounds is None:
        return None
    low, high = bounds
    if low is not None and number < low:
        return "L"
    if high is not None and number > high:
        return "H"
    return "N"


#: UCUM unit codes as people read them (the wire, the database and exports keep UCUM)
UNIT_SYMBOLS: dict[str, str] = {
    "10*9/L": "×10⁹/L", "10*12/L": "×10¹²/L", "10*3/uL": "×10³/µL", "10*6/uL": "×10⁶/µL",
    "10^9/L": "×10⁹/L", "10^12/L": "×10¹²/L", "umol/L": "µmol/L", "ug/L": "µg/L", "ug/mL": "µg/mL",
    "uL": "µL", "fL": "fL", "[IU]/L": "IU/L", "m[IU]/L": "mIU/L", "u[IU]/mL": "µIU/mL",
    "mm[Hg]": "mmHg", "Cel": "°C", "kg/m2": "kg/m²", "/min": "/min", "%": "%",
}


def unit_symbol(ucum: str) -> str:
    """The symbol people read for a UCUM unit code; an unknown unit is shown as sent."""
    return UNIT_SYMBOLS.get(ucum, ucum)
