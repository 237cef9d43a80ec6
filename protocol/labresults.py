"""Laboratory results for people: the display name of a result code, its reference range, its flag.

Hospitals send ``OBX|3|NM|718-7^Hb^LN||9.8|g/dL|11.5-15.0|L``; a screen should say
"血红蛋白 9.8 g/dL ↓ (11.5-15.0)", not "hl7 718-7 9.8 g/dL". The names come from the
observation table of :mod:`protocol.codes` (vitals) and from :data:`LAB_NAMES` (the laboratory
and screening codes the clinics' HIS/LIS send, LOINC display names). A stored code that is not
LOINC (``SYSTEM:local``) is named by the LOINC code after its last colon when that is one of
ours, or by :data:`LOCAL_CODES` (the abbreviations Chinese LIS send: GLU, HGB, TCT ...); the
names only, the stored code stays as sent. An unknown code keeps the text the sender gave in
OBX-3.2 (:func:`known` tells a screen it is the sender's text, and shows the code apart).
The flag is the sender's OBX-8 (HL7 table 0078) when it sent one, else derived from the
reference range it sent (``low-high``, ``<x``, ``>x``).

>>> display_name("718-7", "zh-CN"), display_name("L:XYZ", "en", sent="Ferritin")
('血红蛋白', 'Ferritin')
>>> display_name("L:GLU", "zh-CN"), display_name("L:HPV16", "en"), known("L:XYZ")
('葡萄糖', 'HPV 16', False)
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
from protocol.hl7.codemap import is_loinc

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
    # complete blood count as LIS send it (NIST LRI CBC, the FHIR-Converter samples in tests/fixtures/hl7)
    "20509-6": ("血红蛋白（计算）", "Hemoglobin (calculated)"),
    "20570-8": ("红细胞压积", "Hematocrit"),
    "26453-1": ("红细胞计数", "Erythrocytes"),
    "11273-0": ("红细胞", "Erythrocytes"),
    "26464-8": ("白细胞计数", "Leukocytes"),
    "26515-7": ("血小板计数", "Platelets"),
    "30428-7": ("平均红细胞体积", "Mean corpuscular volume"),
    "28539-5": ("平均红细胞血红蛋白量", "Mean corpuscular hemoglobin"),
    "28540-3": ("平均红细胞血红蛋白浓度", "Mean corpuscular hemoglobin concentration"),
    "30385-9": ("红细胞分布宽度", "Erythrocyte distribution width"),
    "26499-4": ("中性粒细胞计数", "Neutrophils"),
    "26511-6": ("中性粒细胞百分比", "Neutrophils %"),
    "23761-0": ("中性粒细胞百分比", "Neutrophils %"),
    "26474-7": ("淋巴细胞计数", "Lymphocytes"),
    "26478-8": ("淋巴细胞百分比", "Lymphocytes %"),
    "26484-6": ("单核细胞计数", "Monocytes"),
    "26485-3": ("单核细胞百分比", "Monocytes %"),
    "26449-9": ("嗜酸性粒细胞计数", "Eosinophils"),
    "26450-7": ("嗜酸性粒细胞百分比", "Eosinophils %"),
    "26444-0": ("嗜碱性粒细胞计数", "Basophils"),
    "30180-4": ("嗜碱性粒细胞百分比", "Basophils %"),
    "6742-1": ("红细胞形态", "Erythrocyte morphology"),
    "11156-7": ("白细胞形态", "Leukocyte morphology"),
    "11125-2": ("血小板形态", "Platelet morphology"),
    "779-9": ("异形红细胞", "Poikilocytosis"),
    "38892-6": ("红细胞大小不等", "Anisocytosis"),
    "30434-5": ("小红细胞", "Microcytes"),
    "30424-6": ("大红细胞", "Macrocytes"),
    "30400-6": ("低色素红细胞", "Hypochromia"),
    "10378-8": ("多染性红细胞", "Polychromasia"),
    "1554-5": ("空腹血糖（12 小时）", "Glucose, 12 h fasting"),
    # chemistry, thyroid, hepatitis, urine: the common remainder of a clinic's LIS panel
    "1975-2": ("总胆红素", "Bilirubin, total"),
    "1968-7": ("直接胆红素", "Bilirubin, direct"),
    "2085-9": ("高密度脂蛋白胆固醇", "HDL cholesterol"),
    "13457-7": ("低密度脂蛋白胆固醇", "LDL cholesterol"),
    "3084-1": ("尿酸", "Urate"),
    "2885-2": ("总蛋白", "Protein, total"),
    "6768-6": ("碱性磷酸酶", "Alkaline phosphatase"),
    "2324-2": ("γ-谷氨酰转移酶", "Gamma glutamyl transferase"),
    "3024-7": ("游离甲状腺素", "Free thyroxine (FT4)"),
    "3051-0": ("游离三碘甲状腺原氨酸", "Free triiodothyronine (FT3)"),
    "2106-3": ("人绒毛膜促性腺激素", "Choriogonadotropin (hCG)"),
    "5195-3": ("乙肝表面抗体", "Hepatitis B surface antibody"),
    "5393-4": ("梅毒螺旋体抗体", "Treponema pallidum antibody"),
    "7917-8": ("艾滋病病毒抗体", "HIV antibody"),
    "5792-7": ("尿葡萄糖", "Urine glucose"),
    "5803-2": ("尿酸碱度", "Urine pH"),
    "BIRADS-US": ("乳腺超声 BI-RADS", "Breast ultrasound BI-RADS"),
    "BIRADS-MG": ("乳腺 X 线 BI-RADS", "Mammography BI-RADS"),
}
#: local result codes (OBX-3.1 without a LOINC coding system) Chinese LIS commonly send -> the LOINC code whose
#: names they are shown by (display only: storing a LOINC code for them is ``[hl7.code_map]``'s job)
LOCAL_CODES: dict[str, str] = {
    "GLU": "2345-7", "HGB": "718-7", "HB": "718-7", "RBC": "789-8", "WBC": "6690-2", "PLT": "777-3",
    "HCT": "4544-3", "HBA1C": "4548-4", "TC": "2093-3", "CHOL": "2093-3", "TG": "2571-8", "ALT": "1742-6",
    "AST": "1920-8", "CREA": "2160-0", "CR": "2160-0", "BUN": "3094-0", "UREA": "3094-0", "ALB": "1751-7",
    "TBIL": "1975-2", "DBIL": "1968-7", "HDL": "2085-9", "HDL-C": "2085-9", "LDL": "13457-7", "LDL-C": "13457-7",
    "UA": "3084-1", "TP": "2885-2", "ALP": "6768-6", "GGT": "2324-2", "TSH": "3016-3", "FT4": "3024-7",
    "FT3": "3051-0", "HCG": "2106-3", "HBSAG": "5196-1", "HBSAB": "5195-3", "TP-AB": "5393-4", "HIV": "7917-8",
    "HPV16": "59263-4", "HPV18": "59420-0", "TCT": "47527-7",
}
#: HL7 table 0078 abnormal flags a screen shows (others, e.g. "N" or "", mean nothing to mark)
ABNORMAL = ("L", "LL", "H", "HH", "A", "AA", "<", ">")
_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_RANGE = re.compile(rf"\s*({_NUMBER})\s*(?:-|–|~|～|至)\s*({_NUMBER})\s*")
_BOUND = re.compile(rf"\s*(<=?|≤|>=?|≥)\s*({_NUMBER})\s*")


def _names(code: str) -> tuple[str, str] | None:
    """(zh-CN, en) of a stored result code, or None when the tables do not know it."""
    vital = codes.CODES.get(code)
    if vital is not None:
        return vital.zh, vital.en
    if code in LAB_NAMES:
        return LAB_NAMES[code]
    _, colon, local = code.rpartition(":")
    if not colon:
        return None
    if is_loinc(local) and local in LAB_NAMES:  # a LOINC code sent under another system name
        return LAB_NAMES[local]
    loinc = LOCAL_CODES.get(local.upper())
    return LAB_NAMES[loinc] if loinc is not None else None


def known(code: str) -> bool:
    """True when the tables name ``code`` (else a screen shows the sender's OBX-3.2 text)."""
    return _names(code) is not None


def display_name(code: str, lang: str, sent: str = "") -> str:
    """The name people read for a result code (zh-CN or en); ``sent`` (OBX-3.2) when the tables lack it."""
    zh_en = _names(code)
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
