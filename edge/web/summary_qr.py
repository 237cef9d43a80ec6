"""The kiosk's result summary as a QR code the patient scans with her phone (pure; ``segno``).

What the code holds is exactly the text of the summary screen and no more: a heading with the
date and the station's name, the overall meaning, and one line per result (name, value, unit,
meaning), in the kiosk's language. No name (not even masked), no ID number, no visit or hub
identifier, no link: scanning it shows the text on the phone, nothing is fetched from anywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from edge.web.results import Row


def payload(rows: Iterable[Row], overall: str, station_name: str, day: dt.date, t: Callable[[str], str]) -> str:
    """The summary as plain text (``t`` translates a catalog key into the kiosk's language)."""
    lines = [f"{t('kiosk.qr.heading')} {day.isoformat()} {station_name}", t(f"kiosk.overall.{overall}")]
    for r in rows:
        meaning = f" {t(r.meaning)}" if r.meaning else ""
        lines.append(f"{t(r.label)} {r.value} {t('unit.' + r.unit)}{meaning}")
    return "\n".join(lines)


def svg(text: str) -> str:
    """An inline SVG QR code of ``text`` (error correction M, scales to its box: no fixed size)."""
    import segno  # only a kiosk showing a summary needs it (~0.7 MB, issue 21)

    return str(segno.make(text, error="m").svg_inline(scale=1, border=2, omitsize=True, dark="#1f2a30",
                                                      title=None))
