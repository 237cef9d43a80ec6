"""The last line of defence against patient data in logs (issue 17 finding 9).

Callers log ids, counts and reason codes, never an ID number or a name. Should one slip
through anyway (an exception message quoting its input, a URL with a query string), the
:class:`MaskingFilter` on every log handler of the hub and the cloud rewrites the record
before it is written:

* every national ID number (18 characters, a real birth date and the right check character)
  becomes its masked form, ``1101**********002X`` (:func:`protocol.idnum.mask`);
* an access-log line (``uvicorn.access``) loses its query string: ``/ui/x?[query removed]``.

Pure functions and a :class:`logging.Filter`; nothing here writes anywhere.
"""

from __future__ import annotations

import logging
import re

from protocol import idnum

#: 18 characters that could be an ID number, not inside a longer run of letters or digits
_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
_QUERY = re.compile(r"\?[^\s\"']*")
ACCESS_LOGGERS = frozenset({"uvicorn.access"})


def mask_id_numbers(text: str) -> str:
    """``text`` with every valid national ID number masked (other 18-digit numbers kept)."""
    if len(text) < 18:
        return text
    return _CANDIDATE.sub(lambda m: idnum.mask(m.group(0)) if idnum.is_valid(m.group(0)) else m.group(0), text)


def strip_query(text: str) -> str:
    """``text`` with every URL query string replaced by ``?[query removed]``."""
    return _QUERY.sub("?[query removed]", text)


class MaskingFilter(logging.Filter):
    """Attach to a handler: masks ID numbers in the message and traceback, strips access-log queries."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format string: keep the raw text, masked
            message = str(record.msg)
        if record.name in ACCESS_LOGGERS:
            message = strip_query(message)
        record.msg, record.args = mask_id_numbers(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_id_numbers(record.exc_text)
        return True
