"""Rows of the ``results`` table -> :class:`~protocol.mch.assemble.Evidence` for screening cases.

The contract with the parts that store results (HL7 intake, DICOM intake) is the row
shape of ``results`` (migration 1), read tolerantly:

=========  =======================================  ==========================================
source     kind                                     what is read
=========  =======================================  ==========================================
``hl7``    ``hpv``, ``cytology``, ``pathology``,     ``code`` (LOINC or local), ``value`` (the
           ``colposcopy``, ``via`` (others:          OBX-5 text), ``payload`` = the LabResult
           only when ``code`` is in the result map)  JSON (top level or under ``result``):
                                                     ``loinc``, ``name``, ``interpretation``
``dicom``  ``birads`` (or any row whose payload      ``value`` or ``payload.birads`` = the
           has ``birads``)                           category; ``code`` BIRADS-US / BIRADS-MG, or
                                                     ``payload.modality`` / ``report_modality``
                                                     (the assembler sets it from the other
                                                     instances of ``payload.study_uid`` in
                                                     ``dicom_instances``), or words in
                                                     ``study_description``/``sr_text``
=========  =======================================  ==========================================

The date of a finding is ``observed_ms`` (else ``created_ms``) in China time. First the
configured :class:`~protocol.mch.assemble.ResultMap` (result code -> field, text -> code)
is asked; then the rules below read common Chinese and English wordings. A row that says
nothing we understand yields no evidence (it stays in ``results`` for people to read).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from protocol.mch.assemble import Evidence, ResultMap

CHINA = dt.timezone(dt.timedelta(hours=8))

_TBS = {"NILM": "NILM", "ASCUS": "ASC-US", "ASC-US": "ASC-US", "ASCH": "ASC-H", "ASC-H": "ASC-H", "LSIL": "LSIL",
        "HSIL": "HSIL", "SCC": "SCC", "AGC": "AGC-NOS", "AGC-NOS": "AGC-NOS", "AGC-FN": "AGC-FN", "AIS": "AIS"}
_TBS_RE = re.compile(r"\b(NILM|ASC-?US|ASC-?H|LSIL|HSIL|SCC|AGC(?:-NOS|-FN)?|AIS)\b", re.I)
_NEG = re.compile(r"阴性|negative|not detected|\bneg\b|未检出|未见上皮内病变", re.I)
_POS = re.compile(r"阳性|positive|\bdetected\b|\bpos\b|检出", re.I)
_LIQUID = re.compile(r"TCT|LCT|液基|thin ?prep|liquid", re.I)
_PAP_SMEAR = re.compile(r"巴氏涂片|pap smear|conventional", re.I)
_BREAST = re.compile(r"乳腺|乳房|breast|mamm|fibroadenoma|ductal|lobular|纤维腺瘤|导管|小叶", re.I)
_CERVIX = re.compile(r"宫颈|cervi|CIN|鳞状|squamous", re.I)
#: (pattern, cervical histology code), most severe first
_CERVICAL_HISTOLOGY = (
    (re.compile(r"浸润|invasive|鳞癌|腺癌|carcinoma(?! in situ)", re.I), "invasive"),
    (re.compile(r"原位腺癌|\bAIS\b|adenocarcinoma in situ", re.I), "AIS"),
    (re.compile(r"CIN\s*(3|III)|HSIL.*CIN\s*3", re.I), "CIN3"),
    (re.compile(r"CIN\s*(2|II)\b", re.I), "CIN2"),
    (re.compile(r"CIN\s*(1|I)\b|LSIL", re.I), "CIN1"),
    (re.compile(r"炎|正常|normal|inflamm|良性|benign", re.I), "normal"),
)
_BREAST_PATHOLOGY = (
    (re.compile(r"浸润性导管癌|invasive ductal", re.I), "invasive_ductal"),
    (re.compile(r"浸润性小叶癌|invasive lobular", re.I), "invasive_lobular"),
    (re.compile(r"导管原位癌|DCIS|ductal carcinoma in situ", re.I), "DCIS"),
    (re.compile(r"小叶原位癌|LCIS|lobular carcinoma in situ", re.I), "LCIS"),
    (re.compile(r"癌|carcinoma|malignan|恶性", re.I), "malignant_other"),
    (re.compile(r"非典型增生|atypical", re.I), "atypical_hyperplasia"),
    (re.compile(r"纤维腺瘤|fibroadenoma", re.I), "fibroadenoma"),
    (re.compile(r"导管内乳头状瘤|papilloma", re.I), "intraductal_papilloma"),
    (re.compile(r"良性|benign|增生|hyperplasia|腺病", re.I), "benign_other"),
)
_BIRADS = re.compile(r"^\s*(?:BI-?RADS\s*)?([0-6])\s*([ABC])?\s*类?\s*$", re.I)
_US = re.compile(r"超声|ultrasound|sonograph|\bUS\b", re.I)
_MG = re.compile(r"钼靶|X线|mammo|\bMG\b|tomosynth", re.I)


def finding_date(observed_ms: int | None, created_ms: int) -> str:
    """YYYY-MM-DD in China time of a result."""
    return dt.datetime.fromtimestamp((observed_ms or created_ms) / 1000, tz=CHINA).date().isoformat()


def _payload(raw: Any) -> dict[str, Any]:
    """The payload JSON; the HL7 intake nests the LabResult under ``result`` (flattened here)."""
    try:
        value = msgspec.json.decode(raw) if isinstance(raw, (str, bytes)) else raw
    except msgspec.DecodeError:
        return {}
    if not isinstance(value, dict):
        return {}
    nested = value.get("result")
    return {**nested, **{k: v for k, v in value.items() if k != "result"}} if isinstance(nested, dict) else value


def _hpv(text: str, interpretation: str | None) -> str | None:
    if interpretation == "negative" or (interpretation is None and _NEG.search(text) and not _POS.search(text)):
        return "negative"
    if interpretation not in (None, "positive") and not _POS.search(text):
        return None
    if interpretation is None and not _POS.search(text):
        return None
    t16, t18 = bool(re.search(r"16", text)), bool(re.search(r"18", text))
    if t16 and t18:
        return "positive_16_18"
    if t16 or t18:
        return "positive_16" if t16 else "positive_18"
    return "positive_other" if re.search(r"其他|other|非16", text, re.I) else "positive_untyped"


def _tbs(text: str, interpretation: str | None) -> str | None:
    if interpretation and interpretation.upper() in _TBS:
        return _TBS[interpretation.upper()]
    m = _TBS_RE.search(text)
    if m:
        return _TBS.get(m.group(1).upper())
    return "NILM" if _NEG.search(text) else None


def _first(table: tuple[tuple[re.Pattern[str], str], ...], text: str) -> str | None:
    return next((code for pattern, code in table if pattern.search(text)), None)


def birads_of(value: str) -> str | None:
    """BI-RADS category code ("0".."6", "4A".."4C") of a text such as "4a", "BI-RADS 3", "4B类"."""
    m = _BIRADS.match(value or "")
    if not m:
        return None
    digit, sub = m.group(1), (m.group(2) or "").upper()
    return digit + sub if digit == "4" and sub else digit


def _dicom(code: str, value: str, p: Mapping[str, Any], on: str, source: str) -> list[Evidence]:
    category = birads_of(str(p.get("birads") or value))
    if category is None:
        return []
    words = " ".join(str(p.get(k) or "") for k in ("modality", "report_modality", "study_description", "sr_text"))
    named = code.upper()[7:] if code.upper().startswith("BIRADS-") else str(p.get("report_modality", "")).upper()
    if named not in ("US", "MG") and str(p.get("modality", "")).upper() in ("US", "MG"):
        named = str(p["modality"]).upper()
    if named not in ("US", "MG"):
        named = "MG" if _MG.search(words) else "US" if _US.search(words) else ""
    if not named:
        return []
    fld = "ultrasound_birads" if named == "US" else "mammography_birads"
    return [Evidence(fld, category, on, source)]


def evidence_of(row: Mapping[str, Any], result_map: ResultMap) -> list[Evidence]:
    """What one ``results`` row says about a screening case (possibly nothing)."""
    source = f"{row['source']}:{row['id']}"
    on = finding_date(row["observed_ms"], row["created_ms"])
    p = _payload(row["payload"])
    code, value, kind = str(row["code"] or ""), str(row["value"] or ""), str(row["kind"] or "")
    if row["source"] == "dicom" or kind == "birads" or "birads" in p:
        return _dicom(code, value, p, on, source)
    for c in (code, str(p.get("loinc") or "")):
        if c:
            mapped = result_map.evidence(c, value, on, source)
            if mapped is not None:
                return [mapped, *_sampling(result_map.codes.get(c), c, value, p, on, source)]
    text = f"{value} {p.get('name', '')}"
    interpretation = p.get("interpretation")
    if kind == "hpv":
        hpv = _hpv(text, interpretation if isinstance(interpretation, str) else None)
        return [Evidence("hpv", hpv, on, source)] if hpv else []
    if kind == "cytology":
        tbs = _tbs(value, interpretation if isinstance(interpretation, str) else None)
        if tbs is None:
            return []
        return [Evidence("tbs", tbs, on, source), *_sampling("tbs", str(p.get("loinc") or code), text, p, on, source)]
    if kind == "pathology":
        if _BREAST.search(text) and not _CERVIX.search(text):
            found = _first(_BREAST_PATHOLOGY, value)
            return [Evidence("pathology", found, on, source)] if found else []
        found = _first(_CERVICAL_HISTOLOGY, value)
        return [Evidence("histology", found, on, source)] if found else []
    if kind == "colposcopy":
        if _NEG.search(value) or re.search(r"未见异常|正常|normal", value, re.I):
            return [Evidence("colposcopy", "normal", on, source)]
        if re.search(r"未做|not done", value, re.I):
            return [Evidence("colposcopy", "not_done", on, source)]
        return [Evidence("colposcopy", "abnormal", on, source),
                Evidence("colposcopy_impression", value.strip()[:200], on, source)]
    if kind in ("via", "via_vili"):
        return [Evidence("via_vili", "positive" if _POS.search(value) else "no_abnormality", on, source)]
    return []


def _sampling(fld: str | None, code: str, text: str, p: Mapping[str, Any], on: str, source: str) -> list[Evidence]:
    """The sampling method that goes with a cytology result, when the result says it."""
    if fld != "tbs":
        return []
    words = f"{text} {p.get('name', '')} {p.get('order_code', '')}"
    if code == "47527-7" or _LIQUID.search(words):
        return [Evidence("sampling", "liquid_based", on, source)]
    if _PAP_SMEAR.search(words):
        return [Evidence("sampling", "pap", on, source)]
    return []
