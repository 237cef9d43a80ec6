"""ER7 (pipe-and-hat) reading: bytes -> segments of fields, split lazily.

:func:`split_message` does the work every message needs (delimiters, charset, segment
and field split) and nothing more; components, repetitions and escapes are split only
for the fields somebody asks for, which keeps the hot ingest path fast. Real-world
tolerance: segments may end in ``\\r``, ``\\n`` or ``\\r\\n``; blank lines are skipped;
missing trailing fields read as empty.
"""

from __future__ import annotations

from protocol.hl7.encoding import Delimiters, codec_for, decode, delimiters_from, unescape
from protocol.hl7.errors import ParseError

MAX_SEGMENTS = 10_000
class Segment:
    """One segment. ``fields[n]`` is field n (for MSH, ``fields[1]`` is MSH-1, the separator)."""

    __slots__ = ("_special", "codec", "delims", "fields", "index", "name", "simple")

    def __init__(self, name: str, fields: list[str], delims: Delimiters, codec: str, index: int,
                 simple: bool = False) -> None:
        self.name = name
        self.fields = fields
        self.delims = delims
        self.codec = codec
        self.index = index  #: 0-based position in the message (for error locations)
        self._special = delims.special
        #: no repetition, escape or subcomponent character anywhere: fields split by partition alone
        self.simple = simple

    def raw(self, n: int) -> str:
        """Field ``n`` exactly as sent (escaped, with its repetitions); '' when absent."""
        f = self.fields
        return f[n] if n < len(f) else ""

    def repetitions(self, n: int) -> list[str]:
        """The repetitions of field ``n`` (still escaped); [] when empty."""
        value = self.raw(n)
        return value.split(self.delims.repetition) if value else []

    def components(self, n: int, rep: int = 0) -> list[str]:
        """Unescaped components of repetition ``rep`` of field ``n``."""
        value = self.raw(n)
        if not value:
            return []
        d = self.delims
        if d.repetition in value:
            reps = value.split(d.repetition)
            value = reps[rep] if rep < len(reps) else ""
        elif rep:
            return []
        return [unescape(c, d, self.codec) for c in value.split(d.component)]

    def get(self, n: int, comp: int = 1, sub: int = 1, rep: int = 0) -> str:
        """Unescaped value at field ``n``, component ``comp``, subcomponent ``sub`` (1-based)."""
        f = self.fields
        value = f[n] if n < len(f) else ""
        if not value or self._special(value) is None:  # plain value: only its first component exists
            return value if comp == 1 and sub == 1 and rep == 0 else ""
        if n <= 2 and self.name == "MSH":
            return value  # MSH-1/MSH-2 are the delimiters themselves
        d = self.delims
        if d.repetition in value:
            reps = value.split(d.repetition)
            value = reps[rep] if rep < len(reps) else ""
        elif rep:
            return ""
        if d.component in value:
            parts = value.split(d.component)
            value = parts[comp - 1] if comp <= len(parts) else ""
        elif comp > 1:
            return ""
        if d.subcomponent in value:
            parts = value.split(d.subcomponent)
            value = parts[sub - 1] if sub <= len(parts) else ""
        elif sub > 1:
            return ""
        return unescape(value, d, self.codec) if d.escape in value else value

    def location(self, n: int) -> str:
        """ERR-2 style location of field ``n``: ``OBX^4^5``."""
        return f"{self.name}^{self.index + 1}^{n}"

    def __repr__(self) -> str:
        return f"Segment({self.name}, {len(self.fields) - 1} fields)"


def split_message(raw: bytes) -> list[Segment]:
    """Decode and split a message into segments; raise a :class:`ParseError` subclass."""
    start = 0
    while start < len(raw) and raw[start] in b" \t\r\n\xef\xbb\xbf":  # whitespace or a UTF-8 BOM
        start += 1
    if start:
        raw = raw[start:]
    delims = delimiters_from(raw)
    fs = delims.field
    first_end = len(raw)
    for sep in (b"\r", b"\n"):
        i = raw.find(sep)
        if 0 <= i < first_end:
            first_end = i
    msh_bytes = raw[:first_end].split(fs.encode("latin-1"))
    msh18 = msh_bytes[17].decode("latin-1") if len(msh_bytes) > 17 else ""
    declared = msh18.split(delims.repetition, 1)[0].split(delims.component, 1)[0].strip()
    codec = codec_for(declared)
    text = decode(raw, codec, bool(declared))
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    lines = text.split("\r")
    if len(lines) > MAX_SEGMENTS:
        raise ParseError(f"more than {MAX_SEGMENTS} segments")
    segments: list[Segment] = []
    rep, esc, sub = delims.repetition, delims.escape, delims.subcomponent
    for line in lines:
        if not line or line.isspace():
            continue
        fields = line.split(fs)
        name = fields[0]
        if len(name) != 3 or not (name.isascii() and name.isalnum() and name.isupper()):
            raise ParseError(f"segment {len(segments) + 1} has an invalid name {name[:8]!r}",
                             location=f"{name[:3]}^{len(segments) + 1}")
        simple = False
        if name == "MSH":
            fields.insert(1, fs)
        else:
            simple = rep not in line and esc not in line and sub not in line
        segments.append(Segment(name, fields, delims, codec, len(segments), simple))
    return segments
