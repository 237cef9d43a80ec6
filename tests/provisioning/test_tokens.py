"""Enrollment tokens: format, typo detection, one-time use, expiry, site and serial binding."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioning.errors import (
    RequestError,
    TokenExpired,
    TokenMalformed,
    TokenUnknown,
    TokenUsed,
    TokenWrongSerial,
    TokenWrongSite,
)
from provisioning.tokens import (
    ALPHABET,
    check_character,
    check_token,
    new_record,
    new_token,
    parse_duration,
    parse_token,
)
from tests.provisioning.conftest import DAY, NOW

KEY_A = hashlib.sha256(b"a").hexdigest()
KEY_B = hashlib.sha256(b"b").hexdigest()


def test_token_is_five_groups_of_five_and_parses_back() -> None:
    issued = new_token()
    groups = issued.text.split("-")
    assert [len(g) for g in groups] == [5, 5, 5, 5, 5]
    assert all(c in ALPHABET for c in "".join(groups))
    parsed = parse_token(issued.text)
    assert (parsed.token_id, parsed.digest) == (issued.token_id, issued.digest)


def test_typing_is_forgiving_case_spaces_and_crockford_aliases() -> None:
    issued = new_token()
    sloppy = issued.text.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert parse_token(sloppy).digest == issued.digest


def test_the_record_keeps_only_a_digest() -> None:
    issued = new_token()
    record = new_record(issued, site_id="dongcheng", now_ms=NOW)
    assert issued.text.replace("-", "") not in repr(record)
    assert record.digest == issued.digest and record.expires_ms == NOW + DAY


@given(st.data())
def test_any_single_mistyped_character_is_caught_by_the_check(data: st.DataObject) -> None:
    canonical = new_token().text.replace("-", "")
    pos = data.draw(st.integers(0, len(canonical) - 1))
    wrong = data.draw(st.sampled_from([c for c in ALPHABET if c != canonical[pos]]))
    with pytest.raises(TokenMalformed, match="check character"):
        parse_token(canonical[:pos] + wrong + canonical[pos + 1 :])


@given(st.data())
def test_swapping_two_adjacent_different_characters_is_caught(data: st.DataObject) -> None:
    canonical = new_token().text.replace("-", "")
    pos = data.draw(st.integers(0, len(canonical) - 2))
    if canonical[pos] == canonical[pos + 1] or {canonical[pos], canonical[pos + 1]} == {"0", "Z"}:
        return  # nothing swapped, or Luhn's documented blind spot
    swapped = canonical[:pos] + canonical[pos + 1] + canonical[pos] + canonical[pos + 2 :]
    with pytest.raises(TokenMalformed):
        parse_token(swapped)


@pytest.mark.parametrize("text", ["", "ABCDE", "ABCDE-FGHJK-MNPQR-STVWX-YZ01-22", "ABCDE-FGHJK-MNPQR-STVWX-YZ01U"])
def test_malformed_tokens_are_refused_before_any_lookup(text: str) -> None:
    with pytest.raises(TokenMalformed):
        parse_token(text)


def test_check_character_reference_value() -> None:
    # Luhn mod 32 computed by hand: "1" -> factor 2 -> 2 -> check (32-2) % 32 = 30 -> "Y"
    assert check_character("1") == "Y"


def _fresh(site: str = "dongcheng", serial: str | None = None):  # type: ignore[no-untyped-def]
    issued = new_token()
    return parse_token(issued.text), new_record(issued, site_id=site, now_ms=NOW, hub_serial=serial)


def test_a_fresh_token_is_accepted_once_then_only_for_the_same_key() -> None:
    token, record = _fresh()
    assert check_token(record, token, now_ms=NOW, key_fingerprint=KEY_A) is False
    import msgspec

    used = msgspec.structs.replace(record, used_ms=NOW, used_by_hub="dongcheng-h01", used_key=KEY_A)
    assert check_token(used, token, now_ms=NOW + 2 * DAY, key_fingerprint=KEY_A) is True  # re-run, even after expiry
    with pytest.raises(TokenUsed, match="dongcheng-h01"):
        check_token(used, token, now_ms=NOW, key_fingerprint=KEY_B)


def test_unknown_and_wrong_digest_look_the_same() -> None:
    token, record = _fresh()
    other, _ = _fresh()
    with pytest.raises(TokenUnknown):
        check_token(None, token, now_ms=NOW, key_fingerprint=KEY_A)
    with pytest.raises(TokenUnknown):
        check_token(record, other, now_ms=NOW, key_fingerprint=KEY_A)


def test_expired_token() -> None:
    token, record = _fresh()
    check_token(record, token, now_ms=NOW + DAY - 1, key_fingerprint=KEY_A)
    with pytest.raises(TokenExpired, match="token create --site dongcheng"):
        check_token(record, token, now_ms=NOW + DAY, key_fingerprint=KEY_A)


def test_token_for_another_site() -> None:
    token, record = _fresh(site="xicheng")
    check_token(record, token, now_ms=NOW, key_fingerprint=KEY_A, site_id="xicheng")
    with pytest.raises(TokenWrongSite, match="xicheng"):
        check_token(record, token, now_ms=NOW, key_fingerprint=KEY_A, site_id="dongcheng")


def test_token_bound_to_a_hub_serial() -> None:
    token, record = _fresh(serial="PI-0001")
    check_token(record, token, now_ms=NOW, key_fingerprint=KEY_A, hub_serial="PI-0001")
    with pytest.raises(TokenWrongSerial):
        check_token(record, token, now_ms=NOW, key_fingerprint=KEY_A, hub_serial="PI-0002")


def test_lifetime_is_bounded() -> None:
    with pytest.raises(TokenMalformed):
        new_record(new_token(), site_id="s", now_ms=NOW, lifetime_ms=31 * DAY)


@pytest.mark.parametrize(("text", "ms"), [("90s", 90_000), ("30m", 1_800_000), ("24h", DAY), ("1d12h", DAY * 3 // 2)])
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "24", "h", "1w", "-1h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(RequestError):
        parse_duration(text)
