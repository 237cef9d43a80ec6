"""Local laboratory codes -> LOINC, from configuration.

Hospitals' LIS often send their own codes (``HPV16^HPV 16型^L``). The mapping lives in
the cloud configuration, keyed by coding system (OBX-3.3, or OBX-3.6 for the
alternate code) and local code::

    [hl7.code_map.L]              # coding system "L" (local)
    HPV16 = "59263-4"
    TCT   = { loinc = "10524-7" }

    >>> from protocol.hl7.message import Coded
    >>> m = CodeMap.from_config({"L": {"HPV16": "59263-4"}})
    >>> m.loinc(Coded("HPV16", "HPV 16型", "L")), m.loinc(Coded("718-7", "Hb", "LN"))
    ('59263-4', '718-7')
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from protocol.hl7.errors import CodeMapError
from protocol.hl7.message import Coded

LOINC_SYSTEMS = frozenset({"LN", "LOINC", "2.16.840.1.113883.6.1"})
_LOINC = re.compile(r"\d{1,7}-\d")


def is_loinc(code: str) -> bool:
    """True for a syntactically valid LOINC code (``NNNNN-N``, with its check digit)."""
    if not _LOINC.fullmatch(code):
        return False
    digits, check = code.split("-")
    return mod10(digits) == int(check)


def mod10(digits: str) -> int:
    """The LOINC Mod 10 check digit of the part before the hyphen."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n // 10 + n % 10
    return (10 - total % 10) % 10


class CodeMap:
    """(coding system, local code) -> LOINC; LOINC-coded values pass through unchanged."""

    def __init__(self, table: Mapping[tuple[str, str], str] | None = None) -> None:
        self._table = dict(table or {})

    @classmethod
    def from_config(cls, data: Mapping[str, object], source: str = "cloud.toml",
                    key: str = "hl7.code_map") -> CodeMap:
        """Build from the ``[hl7.code_map]`` table; errors name the file, the key and the fix."""
        table: dict[tuple[str, str], str] = {}
        for system, codes in data.items():
            if not isinstance(codes, Mapping):
                raise CodeMapError(f"{source}: {key}.{system} must be a table of local code = \"LOINC\" "
                                   f"(for example [{key}.{system}] HPV16 = \"59263-4\")")
            for local, target in codes.items():
                where = f"{source}: {key}.{system}.{local}"
                loinc = target.get("loinc") if isinstance(target, Mapping) else target
                if not isinstance(loinc, str) or not is_loinc(loinc):
                    raise CodeMapError(f"{where} = {loinc!r} is not a LOINC code with a valid check digit "
                                       "(write it as \"NNNNN-N\", e.g. \"59263-4\")")
                table[(str(system), str(local))] = loinc
        return cls(table)

    def loinc(self, code: Coded) -> str | None:
        """The LOINC code for an OBX-3/OBR-4 value, or None when it is neither LOINC nor mapped."""
        if code.system.upper() in LOINC_SYSTEMS and code.code:
            return code.code
        if code.alt_system.upper() in LOINC_SYSTEMS and code.alt_code:
            return code.alt_code
        return self._table.get((code.system, code.code)) or self._table.get((code.alt_system, code.alt_code))

    def __len__(self) -> int:
        return len(self._table)
