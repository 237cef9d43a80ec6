"""The sender credential header, pure: Basic and Bearer read, anything else refused with a typed error."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.dicom.credentials import MAX_HEADER, Presented, check_name, new_token, presented
from cloud.dicom.errors import Unauthorised

TOKEN = new_token()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_and_bearer() -> None:
    assert presented(None) is None and presented("  ") is None
    assert presented(f"Bearer {TOKEN}") == Presented(TOKEN, None)
    assert presented(f"bearer   {TOKEN} ") == Presented(TOKEN, None)
    assert presented(basic("PACS1", TOKEN)) == Presented(TOKEN, "PACS1")
    assert TOKEN.startswith("mchd_") and new_token() != TOKEN


@pytest.mark.parametrize("header", [
    "Digest username=x", f"Bearer {TOKEN[:-30]}", "Bearer mchs_" + "a" * 43, "Basic !!!", basic("PACS1", "password"),
    "Basic " + base64.b64encode(b"no-colon").decode(), "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    "Bearer " + "a" * MAX_HEADER,
])
def test_anything_else_is_unauthorised(header: str) -> None:
    with pytest.raises(Unauthorised):
        presented(header)


def test_names() -> None:
    assert check_name("PACS-1.rad_2") == "PACS-1.rad_2"
    for bad in ("", "-x", "has space", "名字", "x" * 65):
        with pytest.raises(Unauthorised):
            check_name(bad)


@given(st.text(max_size=600))
def test_no_header_crashes_the_parser(header: str) -> None:
    with contextlib.suppress(Unauthorised):
        presented(header)
