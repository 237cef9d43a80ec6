"""QR codes drawn on the server as inline SVG (segno, pure Python): no script, no CDN, no image file.

Used for the one-time-code enrolment on the users page: the ``otpauth://`` URI an
authenticator app scans. The SVG holds nothing but the code's modules, so it can be put in
a page as it is (:class:`markupsafe.Markup`).
"""

from __future__ import annotations

import segno
from markupsafe import Markup

MAX_PAYLOAD = 512  #: characters; an otpauth URI is about 120


def qr_svg(payload: str, *, title: str) -> Markup:
    """``payload`` as an inline SVG QR code (error correction M, 4-module quiet zone, black on white).

    The SVG has a viewBox and no size: the stylesheet sizes it (``figure.qr svg``).
    """
    if not payload or len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a QR payload of {len(payload)} characters (1-{MAX_PAYLOAD})")
    code = segno.make(payload, error="m", micro=False)
    # segno writes only the modules and the title, which it escapes: the SVG is safe to put in a page as it is
    return Markup(code.svg_inline(omitsize=True, border=4, dark="#000", light="#fff", title=title,  # noqa: S704
                                  svgclass="qr", lineclass=None))
