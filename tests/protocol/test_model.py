"""The stable JSON form and derived reading ids."""

from __future__ import annotations

import uuid

from hypothesis import given

from protocol.ids import reading_uid, uuid7
from protocol.model import from_json, to_json
from tests.protocol.strategies import record_streams


@given(record_streams())
def test_json_round_trip(records: list) -> None:
    for r in records:
        assert from_json(to_json(r)) == r


def test_json_is_readable() -> None:
    from protocol.model import Observation, Reading

    r = Reading(hub_id="h", epoch=1, seq=2, at=3, device_id="d", station_id="s", kind="temperature",
                observations=(Observation(code="8310-5", value=37.6, unit="Cel", flag="H"),))
    text = to_json(r).decode()
    assert text.startswith('{"type":"reading"') and '"code":"8310-5"' in text


def test_reading_uid_is_a_deterministic_uuid7() -> None:
    a = reading_uid("hub-1", 7, 42, 1_700_000_000_000)
    assert a == reading_uid("hub-1", 7, 42, 1_700_000_000_000)
    assert a != reading_uid("hub-1", 7, 43, 1_700_000_000_000)
    u = uuid.UUID(a)
    assert u.version == 7 and u.variant == uuid.RFC_4122
    assert u.int >> 80 == 1_700_000_000_000
    assert uuid.UUID(uuid7()).version == 7


def test_reading_uids_match_reading_uid_one_by_one() -> None:
    from protocol.ids import reading_uids

    seqs, ats = [1, 2, 10**12, 2**63 - 1], [0, 1_700_000_000_000, -5, 2**50]
    assert reading_uids("hub-1", 2**64 - 1, seqs, ats) == [reading_uid("hub-1", 2**64 - 1, s, a)
                                                           for s, a in zip(seqs, ats, strict=True)]
