"""The log filter that masks ID numbers and strips access-log query strings (issue 17 finding 9)."""

from __future__ import annotations

import io
import logging

from protocol.logmask import MaskingFilter, mask_id_numbers, strip_query

NID = "11010519491231002X"


def test_valid_id_numbers_are_masked_other_numbers_kept() -> None:
    assert mask_id_numbers(f"patient {NID} at H1") == "patient 1101**********002X at H1"
    assert mask_id_numbers(f"q={NID.lower()}&x=1") == "q=1101**********002x&x=1"
    epoch = "110105194912310021"  # 18 digits, wrong check character: not an ID number
    assert mask_id_numbers(f"epoch {epoch}") == f"epoch {epoch}"
    assert mask_id_numbers(f"seq 9{NID}") == f"seq 9{NID}"  # inside a longer run: not one


def test_access_log_lines_lose_their_query_and_tracebacks_are_masked() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    handler.addFilter(MaskingFilter())
    for name in ("uvicorn.access", "cloud.test"):
        lg = logging.getLogger(name)
        lg.addHandler(handler)
        lg.propagate = False
        lg.setLevel(logging.INFO)
    try:
        logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET",
                                                 "/ui/dashboard/search?q=abc", "1.1", 303)
        try:
            raise ValueError(f"bad subject {NID}")
        except ValueError:
            logging.getLogger("cloud.test").exception("failed for %s", NID)
    finally:
        for name in ("uvicorn.access", "cloud.test"):
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).setLevel(logging.NOTSET)
    text = out.getvalue()
    assert "/ui/dashboard/search?[query removed]" in text and "q=abc" not in text
    assert NID not in text and text.count("1101**********002X") == 2
    assert strip_query("GET /a?b=1 HTTP/1.1") == "GET /a?[query removed] HTTP/1.1"
