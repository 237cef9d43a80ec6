"""Coded answers of the cervical and breast cancer screening programme.

Codes are stable ASCII identifiers (what our records and APIs carry); each has a zh-CN and
an English display name. The mapping from these codes to one platform's own codes lives
in that platform's profile (configuration), never here.
Source: ../shared/reference/clinical.md (national programme, WS 377 data elements).
"""

from __future__ import annotations

ValueSet = dict[str, tuple[str, str]]

HPV: ValueSet = {
    "negative": ("阴性", "negative"),
    "positive_16": ("阳性（16型）", "positive, type 16"),
    "positive_18": ("阳性（18型）", "positive, type 18"),
    "positive_16_18": ("阳性（16型和18型）", "positive, types 16 and 18"),
    "positive_other": ("阳性（其他高危型）", "positive, other high-risk types"),
    "positive_untyped": ("阳性（未分型）", "positive, not typed"),
    "not_done": ("未做", "not done"),
}
VIA_VILI: ValueSet = {
    "no_abnormality": ("未见异常", "no abnormality"),
    "positive": ("阳性", "positive"),
    "not_done": ("未做", "not done"),
}
SAMPLING: ValueSet = {
    "pap": ("巴氏涂片", "Pap smear"),
    "liquid_based": ("液基细胞学", "liquid-based cytology"),
    "other": ("其他", "other"),
}
PAP_CLASS: ValueSet = {c: (f"巴氏{c}级", f"Pap class {c}") for c in ("I", "IIA", "IIB", "III", "IV", "V")}
TBS: ValueSet = {
    "NILM": ("未见上皮内病变或恶性病变", "negative for intraepithelial lesion or malignancy"),
    "ASC-US": ("非典型鳞状细胞，意义不明确", "atypical squamous cells of undetermined significance"),
    "ASC-H": ("非典型鳞状细胞，不除外高度病变", "atypical squamous cells, cannot exclude HSIL"),
    "LSIL": ("低度鳞状上皮内病变", "low-grade squamous intraepithelial lesion"),
    "HSIL": ("高度鳞状上皮内病变", "high-grade squamous intraepithelial lesion"),
    "SCC": ("鳞状细胞癌", "squamous cell carcinoma"),
    "AGC-NOS": ("非典型腺细胞（无具体指定）", "atypical glandular cells, not otherwise specified"),
    "AGC-FN": ("非典型腺细胞，倾向瘤变", "atypical glandular cells, favour neoplastic"),
    "AIS": ("宫颈管原位腺癌", "endocervical adenocarcinoma in situ"),
    "ADENOCARCINOMA": ("腺癌", "adenocarcinoma"),
}
COLPOSCOPY: ValueSet = {
    "normal": ("未见异常", "normal"),
    "abnormal": ("异常", "abnormal"),
    "not_done": ("未做", "not done"),
}
CERVICAL_HISTOLOGY: ValueSet = {
    "normal": ("正常/炎症", "normal or inflammation"),
    "CIN1": ("CIN1", "CIN 1"), "CIN2": ("CIN2", "CIN 2"), "CIN3": ("CIN3", "CIN 3"),
    "AIS": ("原位腺癌", "adenocarcinoma in situ"),
    "invasive": ("浸润癌", "invasive carcinoma"),
}
BREAST_PALPATION: ValueSet = {
    "normal": ("未见异常", "normal"),
    "lump": ("肿块", "lump"),
    "nipple_discharge": ("乳头溢液", "nipple discharge"),
    "skin_change": ("皮肤改变", "skin change"),
    "other_abnormal": ("其他异常", "other abnormality"),
}
BIRADS: ValueSet = {
    "0": ("0类：需进一步检查", "0: incomplete, needs additional imaging"),
    "1": ("1类：阴性", "1: negative"),
    "2": ("2类：良性", "2: benign"),
    "3": ("3类：可能良性", "3: probably benign"),
    "4A": ("4A类：低度可疑恶性", "4A: low suspicion of malignancy"),
    "4B": ("4B类：中度可疑恶性", "4B: moderate suspicion of malignancy"),
    "4C": ("4C类：高度可疑恶性", "4C: high suspicion of malignancy"),
    "5": ("5类：高度提示恶性", "5: highly suggestive of malignancy"),
    "6": ("6类：已证实恶性", "6: known biopsy-proven malignancy"),
}
BREAST_PATHOLOGY: ValueSet = {
    "fibroadenoma": ("纤维腺瘤", "fibroadenoma"),
    "intraductal_papilloma": ("导管内乳头状瘤", "intraductal papilloma"),
    "benign_other": ("其他良性病变", "other benign lesion"),
    "atypical_hyperplasia": ("非典型增生", "atypical hyperplasia"),
    "LCIS": ("小叶原位癌", "lobular carcinoma in situ"),
    "DCIS": ("导管原位癌", "ductal carcinoma in situ"),
    "invasive_ductal": ("浸润性导管癌", "invasive ductal carcinoma"),
    "invasive_lobular": ("浸润性小叶癌", "invasive lobular carcinoma"),
    "malignant_other": ("其他恶性肿瘤", "other malignant tumour"),
}
STAGE: ValueSet = {s: (f"{s}期", f"stage {s}") for s in ("0", "I", "IIA", "IIB", "III+")}

#: cytology results that require a colposcopy decision
ABNORMAL_TBS = frozenset(TBS) - {"NILM"}
ABNORMAL_PAP = frozenset({"IIB", "III", "IV", "V"})
HPV_POSITIVE = frozenset(k for k in HPV if k.startswith("positive"))
HPV_16_18 = frozenset({"positive_16", "positive_18", "positive_16_18"})
SUSPICIOUS_BIRADS = frozenset({"4A", "4B", "4C", "5"})
MALIGNANT_BREAST = frozenset({"DCIS", "invasive_ductal", "invasive_lobular", "malignant_other"})
MALIGNANT_CERVICAL = frozenset({"AIS", "invasive"})

VALUE_SETS: dict[str, ValueSet] = {
    "hpv": HPV, "via_vili": VIA_VILI, "sampling": SAMPLING, "pap_class": PAP_CLASS, "tbs": TBS,
    "colposcopy": COLPOSCOPY, "histology": CERVICAL_HISTOLOGY, "palpation": BREAST_PALPATION,
    "ultrasound_birads": BIRADS, "mammography_birads": BIRADS, "pathology": BREAST_PATHOLOGY,
    "stage": STAGE,
}


def display(value_set: ValueSet, code: str, lang: str = "zh") -> str:
    """Display name of ``code`` in ``lang`` ("zh" or "en"); the code itself when unknown."""
    names = value_set.get(code)
    if names is None:
        return code
    return names[0] if lang == "zh" else names[1]
