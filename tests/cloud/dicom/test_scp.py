"""C-STORE SCP over real associations (pynetdicom SCU from the PACS simulator)."""

from __future__ import annotations

import pytest

from cloud.dicom.objects import ObjectStore
from cloud.dicom.scp import ScpConfigError, StoreScp
from firmware_sim import pacs, pacs_data
from tests.cloud.dicom.bundled import TEST_FILES
from tests.cloud.dicom.conftest import SCU_AET, Recorder


async def test_unknown_calling_ae_is_rejected(scp_port: int, store: ObjectStore) -> None:
    with pytest.raises(pacs.PacsSimError, match="Calling AE title not recognised"):
        await pacs.cstore_async([pacs_data.ultrasound()], "127.0.0.1", scp_port, calling_aet="INTRUDER")
    assert store.instances() == []


async def test_wrong_called_ae_is_rejected(scp_port: int) -> None:
    with pytest.raises(pacs.PacsSimError, match="Called AE title not recognised"):
        await pacs.cstore_async([pacs_data.ultrasound()], "127.0.0.1", scp_port, calling_aet=SCU_AET,
                                called_aet="OTHER")


async def test_echo_from_allowed_ae(scp_port: int) -> None:
    import asyncio

    assert await asyncio.to_thread(pacs.echo, "127.0.0.1", scp_port, calling_aet=SCU_AET) == 0


@pytest.mark.parametrize("charset", ["GB18030", "ISO_IR 192"])
async def test_chinese_sr_and_mammogram(scp_port: int, recorder: Recorder, charset: str) -> None:
    patient = pacs_data.Patient(name="张^三丰")
    items = [pacs_data.basic_text_sr(patient, charset, "5", coded=True), pacs_data.mammogram(patient, charset)]
    statuses = await pacs.cstore_async(items, "127.0.0.1", scp_port, calling_aet=SCU_AET)
    assert [s.status for s in statuses] == [0, 0]
    sr, mg = (recorder.by_uid()[str(d.SOPInstanceUID)] for d in items)
    assert (sr.birads, sr.birads_source, sr.display_name) == ("5", "code", "张三丰")
    assert (mg.laterality, mg.view_position, mg.national_id) == ("R", "MLO", pacs_data.national_id())


async def test_unsupported_sop_class_is_refused_at_association(scp_port: int, store: ObjectStore) -> None:
    ok, mr = pacs_data.ultrasound(), TEST_FILES / "MR_small.dcm"
    statuses = await pacs.cstore_async([mr, ok], "127.0.0.1", scp_port, calling_aet=SCU_AET)
    assert statuses[0].status == pacs.NOT_SENT and "MR Image Storage" in statuses[0].comment
    assert statuses[1].status == 0 and len(store.instances()) == 1


async def test_failures_carry_status_and_comment(scp_port: int, recorder: Recorder) -> None:
    ds = pacs_data.ultrasound()
    first = await pacs.cstore_async([ds], "127.0.0.1", scp_port, calling_aet=SCU_AET)
    ds.PatientName = "改^名"  # same SOP Instance UID, new content
    recorder.fail_next = 1
    other = pacs_data.ultrasound()
    statuses = await pacs.cstore_async([ds, other], "127.0.0.1", scp_port, calling_aet=SCU_AET)
    assert first[0].status == 0
    assert statuses[0].status == 0x0111 and statuses[0].comment.startswith("duplicate_conflict")
    assert statuses[1].status == 0x0110 and statuses[1].comment.startswith("index_failed")


async def test_same_file_by_both_transports_is_one_identical_instance(
    scp_port: int, stow_url: str, store: ObjectStore
) -> None:
    path = TEST_FILES / "CT_small.dcm"
    assert (await pacs.stow(stow_url, [path.read_bytes()])).status == 200
    stored = store.instances()[0].read_bytes()
    statuses = await pacs.cstore_async([path], "127.0.0.1", scp_port, calling_aet=SCU_AET)
    assert statuses[0].status == 0  # identical: a duplicate, not a conflict
    assert store.instances()[0].read_bytes() == stored and len(store.instances()) == 1


def test_open_scp_is_a_configuration_error(store: ObjectStore) -> None:
    with pytest.raises(ScpConfigError, match="allowed_calling_aets"):
        StoreScp(store, None, {})
    with pytest.raises(ScpConfigError, match="16 printable"):
        StoreScp(store, None, {"A_VERY_LONG_AE_TITLE_X": ["127.0.0.1"]})
    with pytest.raises(ScpConfigError, match="list the addresses"):
        StoreScp(store, None, {SCU_AET: []})
    with pytest.raises(ScpConfigError, match="not an IP address"):
        StoreScp(store, None, {SCU_AET: ["pacs.example.org"]})


def test_callback_without_a_loop_is_refused_not_skipped(store: ObjectStore, recorder: Recorder) -> None:
    with pytest.raises(ScpConfigError, match="asyncio loop"):
        StoreScp(store, recorder, {SCU_AET: ["127.0.0.1"]}, host="127.0.0.1", port=0).start()


async def test_start_stop_is_clean(store: ObjectStore) -> None:
    async with StoreScp(store, None, {SCU_AET: ["127.0.0.1"]}, host="127.0.0.1", port=0) as scp:
        assert scp._server is not None
    scp.stop()  # idempotent
