"""ER7 delimiters, escape sequences and character sets.

The encoding characters come from the message itself (MSH-1 and MSH-2), so a sender
using ``#`` instead of ``&`` is read correctly. Escape sequences (HL7 v2.5 §2.7):
``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`` for the delimiters, ``\\Xhh..\\`` for raw bytes in the
message character set, ``\\.br\\`` for a line break (FT), ``\\H\\``/``\\N\\`` (highlighting)
dropped; an unknown sequence is kept literally.

    >>> d = Delimiters()
    >>> unescape("a\\\\F\\\\b\\\\S\\\\c", d)
    'a|b^c'
    >>> escape("a|b^c", d)
    'a\\\\F\\\\b\\\\S\\\\c'
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

from protocol.hl7.errors import CharsetError, NotHl7, UnknownCharset


def charset_key(value: str) -> str:
    """How MSH-18 values are compared: upper case, without spaces, hyphens and underscores."""
    return value.upper().replace(" ", "").replace("-", "").replace("_", "")


#: HL7 table 0211 (alternate character sets, v2.5-v2.9) -> Python codec
TABLE_0211: dict[str, str | None] = {
    "ASCII": "ascii",
    "8859/1": "latin-1", "8859/2": "iso8859-2", "8859/3": "iso8859-3", "8859/4": "iso8859-4",
    "8859/5": "iso8859-5", "8859/6": "iso8859-6", "8859/7": "iso8859-7", "8859/8": "iso8859-8",
    "8859/9": "iso8859-9", "8859/15": "iso8859-15",
    "ISO IR6": "ascii",
    "ISO IR14": "iso2022_jp_2", "ISO IR87": "iso2022_jp_2", "ISO IR159": "iso2022_jp_2",
    "ISO IR100": "latin-1", "ISO IR192": "utf-8",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "CNS 11643-1992": None,  #: no codec in Python: answered AE naming the value
    "BIG-5": "big5",
    "UNICODE": "utf-8",  #: Mindray and other analysers send it for UTF-8
    "UNICODE UTF-8": "utf-8", "UNICODE UTF-16": "utf-16", "UNICODE UTF-32": "utf-32",
}
#: spellings senders use instead of the table 0211 value
VENDOR_CHARSETS: dict[str, str] = {
    "UTF-8": "utf-8", "UTF8": "utf-8", "UTF-16": "utf-16", "UTF-32": "utf-32",
    "GB18030": "gb18030", "GB18030-2005": "gb18030", "GB18030-2022": "gb18030",
    "GB2312": "gb18030", "GBK": "gb18030", "CP936": "gb18030", "EUC-CN": "gb18030",  # GB 18030 covers them
    "BIG5": "big5", "CP950": "big5", "EUC-KR": "euc_kr",
    "ISO-8859-1": "latin-1", "ISO8859-1": "latin-1", "LATIN1": "latin-1", "LATIN-1": "latin-1",
    "WINDOWS-1252": "cp1252", "CP1252": "cp1252",
    "SHIFT_JIS": "shift_jis", "SJIS": "shift_jis", "US-ASCII": "ascii",
}
#: MSH-18 value (:func:`charset_key`) -> Python codec, None for a known set without a codec
CHARSETS: dict[str, str | None] = {
    "": "utf-8",
    **{charset_key(k): v for k, v in VENDOR_CHARSETS.items()},
    **{charset_key(k): v for k, v in TABLE_0211.items()},
}


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The five ER7 delimiters of one message."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    #: search functions computed once: any of ^~\& in a value / anything that needs escaping
    special: Callable[[str], re.Match[str] | None] = dataclasses.field(init=False, repr=False, compare=False)
    needs_escape: Callable[[str], re.Match[str] | None] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        chars = self.component + self.repetition + self.escape + self.subcomponent
        object.__setattr__(self, "special", re.compile("[" + re.escape(chars) + "]").search)
        object.__setattr__(self, "needs_escape", re.compile("[" + re.escape(self.field + chars) + "\r\n]").search)

    @property
    def msh2(self) -> str:
        """The MSH-2 value for these delimiters."""
        return self.component + self.repetition + self.escape + self.subcomponent


DEFAULT = Delimiters()


def delimiters_from(head: bytes) -> Delimiters:
    """Read MSH-1 and MSH-2 from the start of a message; raise :class:`NotHl7` when absent or invalid."""
    if len(head) < 8 or head[:3] != b"MSH":
        raise NotHl7("the message does not start with an MSH segment")
    chars = head[3:9].decode("latin-1")
    fs = chars[0]
    enc = chars[1:].split(fs, 1)[0]
    if len(enc) < 4 or len(enc) > 5 or "\r" in enc or "\n" in enc:  # 5th = truncation char (v2.7)
        raise NotHl7("MSH-2 must hold 4 encoding characters", location="MSH^1^2")
    seps = (fs, *enc[:4])
    if len(set(seps)) != 5 or any(c.isalnum() or c in " \r\n" for c in seps):
        raise NotHl7("the MSH-1/MSH-2 delimiters must be 5 distinct punctuation characters", location="MSH^1^2")
    return Delimiters(fs, enc[0], enc[1], enc[2], enc[3])


def charset_known(msh18: str) -> bool:
    """True when :func:`codec_for` can decode ``msh18``."""
    return CHARSETS.get(charset_key(msh18)) is not None


def codec_for(msh18: str) -> str:
    """The Python codec for an MSH-18 value (first repetition); :class:`UnknownCharset` if unsupported."""
    codec = CHARSETS.get(charset_key(msh18))
    if codec is None:
        raise UnknownCharset(f"MSH-18 character set {msh18[:40]!r} is not supported (HL7 table 0211 values "
                             "such as UNICODE UTF-8, GB 18030-2000, 8859/1, or UTF-8, GB18030, GBK)",
                             location="MSH^1^18")
    return codec


def decode(raw: bytes, codec: str, declared: bool) -> str:
    """Decode a message; without MSH-18, UTF-8 is tried, then GB18030 (common in Chinese HIS)."""
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        if not declared:
            try:
                return raw.decode("gb18030")
            except UnicodeDecodeError:
                pass
        raise CharsetError(f"the message bytes are not valid {codec} (byte offset {exc.start})",
                           location="MSH^1^18") from None


def unescape(value: str, d: Delimiters, codec: str = "utf-8") -> str:
    """Replace escape sequences in one component or subcomponent value."""
    esc = d.escape
    if esc not in value:
        return value
    parts = value.split(esc)
    out = [parts[0]]
    i = 1
    while i < len(parts):
        if i + 1 >= len(parts):  # unterminated sequence: keep literally
            out.append(esc + parts[i])
            break
        seq = parts[i]
        out.append(_expand(seq, d, codec))
        out.append(parts[i + 1])
        i += 2
    return "".join(out)


def _expand(seq: str, d: Delimiters, codec: str) -> str:
    simple = {"F": d.field, "S": d.component, "T": d.subcomponent, "R": d.repetition, "E": d.escape,
              ".br": "\n", "H": "", "N": ""}
    if seq in simple:
        return simple[seq]
    if seq[:1] == "X" and len(seq) % 2 == 1:
        try:
            return bytes.fromhex(seq[1:]).decode(codec)
        except (ValueError, UnicodeDecodeError, LookupError):
            pass
    return d.escape + seq + d.escape


def escape(value: str, d: Delimiters = DEFAULT) -> str:
    """Escape delimiters (and CR/LF as ``\\.br\\``) so ``value`` can sit in one component."""
    e = d.escape
    if d.needs_escape(value) is None:
        return value
    out = value.replace(e, f"{e}E{e}")
    for ch, code in ((d.field, "F"), (d.component, "S"), (d.subcomponent, "T"), (d.repetition, "R")):
        out = out.replace(ch, f"{e}{code}{e}")
    return out.replace("\r\n", "\n").replace("\r", "\n").replace("\n", f"{e}.br{e}")
