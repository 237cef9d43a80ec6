"""STOW-RS over real HTTP (uvicorn on a free port, aiohttp client from the PACS simulator)."""

from __future__ import annotations

import aiohttp
import pytest

from cloud.dicom.objects import ObjectStore
from firmware_sim import pacs, pacs_data
from tests.cloud.dicom.bundled import TEST_FILES
from tests.cloud.dicom.conftest import Recorder, serve
from tests.support.waiting import HANG_S

NID = pacs_data.national_id()


@pytest.mark.parametrize("charset", ["GB18030", "ISO_IR 192"])
async def test_chinese_study_is_indexed(stow_url: str, recorder: Recorder, charset: str) -> None:
    patient = pacs_data.Patient(name="李^晓红")
    study = "2.25.1234567890"
    datasets = [
        pacs_data.ultrasound(patient, charset, study),
        pacs_data.mammogram(patient, charset, "L", "CC", study),
        pacs_data.basic_text_sr(patient, charset, "4B", study_uid=study),
    ]
    answer = await pacs.stow(stow_url, [pacs_data.to_part10(d) for d in datasets], study=study)
    assert answer.status == 200 and len(answer.stored) == 3
    seen = recorder.by_uid()
    assert {seen[u].family for u in answer.stored} == {"US", "MG", "SR"}
    for idx in seen.values():
        assert idx.study_instance_uid == study
        assert idx.display_name == "李晓红" and idx.national_id == NID
    sr = next(i for i in seen.values() if i.family == "SR")
    assert (sr.birads, sr.birads_source) == ("4B", "text")
    path = recorder.seen[0][1]
    assert path.is_file() and path.name == recorder.seen[0][0].sop_instance_uid + ".dcm"


async def test_some_failed_is_202_with_reasons(stow_url: str, store: ObjectStore) -> None:
    good = pacs_data.to_part10(pacs_data.ultrasound())
    mr = (TEST_FILES / "MR_small.dcm").read_bytes()
    answer = await pacs.stow(stow_url, [good, mr, b"not dicom at all"])
    assert answer.status == 202
    assert len(answer.stored) == 1
    reasons = [(code, comment.split(":")[0]) for _, code, comment in answer.failed]
    assert reasons == [(0x0122, "unsupported_sop_class"), (0xC000, "not_dicom")]
    assert answer.failed[0][0] == "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457"
    kept = sorted(p.read_bytes() for p in store.rejected.glob("*.bin"))
    assert sorted([mr, b"not dicom at all"]) == kept  # refused input kept for inspection


async def test_nothing_stored_is_409(stow_url: str) -> None:
    answer = await pacs.stow(stow_url, [b"garbage"])
    assert answer.status == 409 and answer.failed[0][1] == 0xC000


async def test_study_in_url_must_match(stow_url: str) -> None:
    data = pacs_data.to_part10(pacs_data.ultrasound(study_uid="2.25.1"))
    answer = await pacs.stow(stow_url, [data], study="2.25.2")
    assert answer.status == 409
    assert answer.failed[0][1] == 0xA900 and answer.failed[0][2].startswith("study_mismatch")


async def test_duplicates_same_ok_different_conflict(stow_url: str, recorder: Recorder) -> None:
    ds = pacs_data.ultrasound()
    first = pacs_data.to_part10(ds)
    assert (await pacs.stow(stow_url, [first])).status == 200
    assert (await pacs.stow(stow_url, [first])).status == 200  # resend after a lost answer
    assert len(recorder.seen) == 2  # told twice: the callback must be idempotent
    ds.PatientName = "改^名"
    answer = await pacs.stow(stow_url, [pacs_data.to_part10(ds)])
    assert answer.status == 409 and answer.failed[0][1] == 0x0111


async def test_callback_failure_asks_for_resend_then_completes(stow_url: str, recorder: Recorder) -> None:
    data = pacs_data.to_part10(pacs_data.basic_text_sr())
    recorder.fail_next = 1
    answer = await pacs.stow(stow_url, [data])
    assert answer.status == 409 and answer.failed[0][1] == 0x0110
    assert recorder.seen == []
    answer = await pacs.stow(stow_url, [data])
    assert answer.status == 200 and len(recorder.seen) == 1


@pytest.mark.parametrize(
    ("content_type", "status", "reason"),
    [
        ("application/dicom", 415, "unsupported_media_type"),
        ('multipart/related; type="application/dicom+xml"; boundary=b', 415, "unsupported_media_type"),
        ("multipart/related; type=application/dicom", 400, "bad_multipart"),
        ('multipart/related; type="application/dicom"; boundary=other', 400, "bad_multipart"),
    ],
)
async def test_request_level_refusals(stow_url: str, content_type: str, status: int, reason: str) -> None:
    answer = await pacs.stow(stow_url, [b"x"], content_type=content_type)
    assert answer.status == status and answer.body["reason"] == reason
    assert answer.body["message"]


async def test_an_empty_body_is_400(stow_url: str) -> None:
    async with aiohttp.ClientSession() as s, s.post(
            f"{stow_url}/studies", data=b"",
            headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'}) as resp:
        assert resp.status == 400 and (await resp.json())["reason"] == "bad_multipart"


async def test_invalid_study_uid_in_url_is_400(stow_url: str) -> None:
    for study in ("1.2.3abc", "1..2", "1.2%203"):  # (an encoded "/" never matches the route: 404)
        answer = await pacs.stow(stow_url, [b"x"], study=study)
        assert answer.status == 400 and answer.body["reason"] == "invalid_uid"


async def test_body_over_limit_is_413(store: ObjectStore, recorder: Recorder) -> None:
    from cloud.dicom.stow import stow_app

    async for port in serve(stow_app(store, recorder, authorise=None, max_body_bytes=1000)):
        answer = await pacs.stow(f"http://127.0.0.1:{port}/dicomweb", [b"x" * 2000])
        assert answer.status == 413 and answer.body["reason"] == "too_large"
        async with aiohttp.ClientSession() as s:  # chunked upload: no Content-Length to check up front
            async def gen():
                yield b"--b\r\n\r\n"
                yield b"y" * 2000

            async with s.post(f"http://127.0.0.1:{port}/dicomweb/studies", data=gen(),
                              headers={"Content-Type": "multipart/related; boundary=b"}) as resp:
                assert resp.status == 413


@pytest.mark.parametrize("sealed", [False, True])
async def test_a_large_body_is_spooled_to_disk_not_held_in_memory(
    store: ObjectStore, recorder: Recorder, sealed: bool
) -> None:
    """40 MB refused at its end (no closing boundary): memory stays far below the body (issue 19 §6),
    also when the refused body is sealed at rest on its way to ``rejected/``."""
    import os
    import tracemalloc

    from cloud.dicom.stow import stow_app
    from cloud.records.crypto_at_rest import AtRest

    if sealed:
        store.bind_sealer(AtRest(os.urandom(32), os.urandom(32)))

    size, chunk = 40 * 1024 * 1024, b"z" * (256 * 1024)

    async def body():  # type: ignore[no-untyped-def]
        yield b"--b\r\nContent-Type: application/dicom\r\n\r\n"
        for _ in range(size // len(chunk)):
            yield chunk

    async for port in serve(stow_app(store, recorder, authorise=None, max_body_bytes=64 * 1024 * 1024)):
        tracemalloc.start()
        try:
            async with aiohttp.ClientSession() as s, s.post(
                    f"http://127.0.0.1:{port}/dicomweb/studies", data=body(),
                    headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'}) as resp:
                assert resp.status == 400 and (await resp.json())["reason"] == "bad_multipart"
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 12 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for a 40 MiB body"
        [kept] = store.rejected.glob("*.bin")  # the refused body kept whole, moved off the event loop
        assert kept.stat().st_size > size and list(store.tmp.iterdir()) == []
        body_kept = store.read_rejected(kept)
        assert len(body_kept) == size + 40 and body_kept.endswith(chunk) and (b"zzzz" in kept.read_bytes()) != sealed
        async with aiohttp.ClientSession() as s, s.post(  # too large: refused, nothing left behind
                f"http://127.0.0.1:{port}/dicomweb/studies", data=b"x" * (65 * 1024 * 1024),
                headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'}) as resp:
            assert resp.status == 413
        assert list(store.tmp.iterdir()) == []


async def test_a_client_that_goes_away_mid_body_leaves_no_spool_file(stow_url: str, store: ObjectStore) -> None:
    import asyncio

    host, port = stow_url.split("//")[1].split("/")[0].split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /dicomweb/studies HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\n"
                 b'Content-Type: multipart/related; type="application/dicom"; boundary=b\r\n\r\n'
                 + b"--b\r\n\r\n" + b"x" * 3_000_000)
    await writer.drain()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HANG_S
    while not list(store.tmp.iterdir()):  # the server is spooling
        assert loop.time() < deadline, "the body was never spooled"
        await asyncio.sleep(0.02)
    writer.close()
    await writer.wait_closed()
    while list(store.tmp.iterdir()):
        assert loop.time() < deadline, f"spool files left behind: {list(store.tmp.iterdir())}"
        await asyncio.sleep(0.02)
    assert list(store.rejected.iterdir()) == [] and store.instances() == []
