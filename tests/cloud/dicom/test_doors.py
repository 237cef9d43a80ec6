"""The cloud's DICOM doors as a hospital meets them (issue 16 §1, §6; issue 17 §9).

The whole cloud (`mchub cloud serve`'s app under uvicorn, SQLite, [dicom] on with the SCP)
over real sockets, talked to by third-party clients: the ``dicomweb-client`` library for
STOW-RS and pynetdicom's ``storescu`` command-line application for C-STORE. Sender
credentials are created with ``mchub cloud dicom-sender`` (a subprocess) and revoked there.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from cloud.config import CloudConfig
from cloud.db.engine import Database
from cloud.dicom.objects import SEALED_MAGIC, ObjectStore
from cloud.dicom.part10 import split_part10
from cloud.intake.keystore import CloudKeys
from cloud.records.crypto_at_rest import AtRest
from cloud.users import accounts as users
from cloud.users import totp_enrolment as user_totp
from firmware_sim import pacs_data
from tests.cloud.dicom.bundled import FIXTURES
from tests.cloud.support import make_cloud, serving
from tests.cloud.web.support import PASSWORD, WEB, csrf_from, sign_in
from tests.support.services import free_port
from tests.support.waiting import HANG_S

ROOT = Path(__file__).resolve().parents[3]
IMPLICIT, EXPLICIT = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"


@dataclass
class Cloud:
    cfg: CloudConfig
    keys: CloudKeys
    url: str
    scp_port: int

    @property
    def store(self) -> ObjectStore:
        """The object directory, opened with the cloud's at-rest key."""
        keys = self.keys
        return ObjectStore(self.cfg.path.parent / "dicom", AtRest(keys.at_rest, keys.blind_index))

    async def sql(self, text: str, *args: Any) -> list[Any]:
        db = await Database.connect(self.cfg.database.url, 1)
        try:
            async with db.transaction() as tx:
                return await tx.fetch(text, *args)
        finally:
            await db.close()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``mchub cloud dicom-sender ...`` against this cloud's configuration."""
        return subprocess.run([sys.executable, "-m", "mchub", "cloud", "dicom-sender", *args, "--config",
                               str(self.cfg.path)], capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})

    def add_sender(self, name: str) -> str:
        out = self.cli("add", name)
        assert out.returncode == 0, out.stderr
        return next(w for w in out.stdout.split() if w.startswith("mchd_"))


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Cloud]:
    scp_port = free_port()
    toml = (f'[dicom]\nenabled = true\nobject_dir = "dicom"\nscp_host = "127.0.0.1"\nscp_port = {scp_port}\n'
            '[dicom.allowed_calling_aets]\nSTORESCU = ["127.0.0.1"]\nFARPACS = ["10.20.30.0/24"]\n' + WEB)
    cfg, keys = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", toml)
    async with serving(cfg) as url:
        yield Cloud(cfg, keys, url, scp_port)


async def until(check: Callable[[], Awaitable[Any]], limit_s: float = HANG_S) -> Any:
    """Wait for ``check`` to return something truthy (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not (value := await check()):
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {limit_s} s")
        await asyncio.sleep(0.05)
    return value


def stow(url: str, datasets: list[pydicom.Dataset], auth: tuple[str, str] | None = None,
         bearer: str | None = None) -> pydicom.Dataset:
    """STOW-RS with the dicomweb-client library (blocking: call through asyncio.to_thread)."""
    session = requests.Session()
    if auth is not None:
        session.auth = auth
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
    return DICOMwebClient(f"{url}/dicomweb", session=session, headers=headers).store_instances(datasets)


def status_of(exc: BaseException) -> int:
    assert isinstance(exc, requests.HTTPError) and exc.response is not None, exc
    return int(exc.response.status_code)


def storescu(port: int, path: Path, *options: str, aet: str = "STORESCU") -> subprocess.CompletedProcess[str]:
    """pynetdicom's storescu application (``python -m pynetdicom storescu``)."""
    return subprocess.run([sys.executable, "-m", "pynetdicom", "storescu", "127.0.0.1", str(port), str(path),
                           "-aet", aet, "-aec", "MCHUB", "-v", *options], capture_output=True, text=True, timeout=120)


async def test_anonymous_and_wrong_stow_are_refused_401_and_audited_in_bounded_space(cloud: Cloud) -> None:
    ds = pydicom.dcmread(FIXTURES / "reportsi.dcm")
    with pytest.raises(requests.HTTPError) as anonymous:
        await asyncio.to_thread(stow, cloud.url, [ds])
    assert status_of(anonymous.value) == 401
    assert "Basic" in anonymous.value.response.headers["WWW-Authenticate"]
    with pytest.raises(requests.HTTPError) as wrong:
        await asyncio.to_thread(stow, cloud.url, [ds], None, "mchd_" + "x" * 43)
    assert status_of(wrong.value) == 401
    assert cloud.store.instances() == [] and list(cloud.store.rejected.iterdir()) == []  # nothing read, nothing kept
    rows = await cloud.sql("SELECT actor, reason, outcome FROM audit_log WHERE action = 'dicomweb.refused' "
                           "ORDER BY id")
    assert [(r["actor"], r["reason"], r["outcome"]) for r in rows] == [
        ("dicomweb:127.0.0.1", "no_credentials", "refused"), ("dicomweb:127.0.0.1", "bad_credentials", "refused")]
    for _ in range(30):  # a flood adds no rows: counted, written with the next row after the window
        with pytest.raises(requests.HTTPError):
            await asyncio.to_thread(stow, cloud.url, [ds])
    assert len(await cloud.sql("SELECT 1 FROM audit_log WHERE action = 'dicomweb.refused'")) == 2


async def test_sender_credential_from_the_cli_stores_and_is_refused_at_once_when_revoked(cloud: Cloud) -> None:
    token = await asyncio.to_thread(cloud.add_sender, "PACS1")
    ct = pydicom.dcmread(FIXTURES / "CT_small.dcm")
    answer = await asyncio.to_thread(stow, cloud.url, [ct], ("PACS1", token))
    assert "FailedSOPSequence" not in answer and len(answer.ReferencedSOPSequence) == 1
    sr = pydicom.dcmread(FIXTURES / "sr_birads_coded.dcm")
    await asyncio.to_thread(stow, cloud.url, [sr], None, token)  # Bearer works too
    assert (await cloud.sql("SELECT birads FROM dicom_instances WHERE family = 'SR'"))[0]["birads"] == "4"
    with pytest.raises(requests.HTTPError) as other_name:  # Basic with another sender's name
        await asyncio.to_thread(stow, cloud.url, [ct], ("PACS2", token))
    assert status_of(other_name.value) == 401
    token_file = cloud.cfg.path.parent / "pacs1.token"
    token_file.write_text(token + "\n")
    sim = await asyncio.to_thread(subprocess.run, [  # the PACS simulator's command line with the credential
        sys.executable, "-m", "firmware_sim.pacs_cli", "stow", f"{cloud.url}/dicomweb", str(FIXTURES / "reportsi.dcm"),
        "--sender", "PACS1", "--token-file", str(token_file)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "HTTP 200: 1 stored" in sim.stdout, sim.stdout + sim.stderr
    listed = await asyncio.to_thread(cloud.cli, "list")
    assert "PACS1" in listed.stdout and "active" in listed.stdout and token not in listed.stdout
    assert (await asyncio.to_thread(cloud.cli, "revoke", "PACS1")).returncode == 0
    with pytest.raises(requests.HTTPError) as revoked:
        await asyncio.to_thread(stow, cloud.url, [ct], ("PACS1", token))
    assert status_of(revoked.value) == 401
    stored = await cloud.sql("SELECT token_digest FROM dicom_senders")
    assert token not in str(stored[0]["token_digest"])  # only the digest is kept
    actions = {r["action"] for r in await cloud.sql("SELECT action FROM audit_log")}
    assert {"dicom_sender.add", "dicom_sender.revoke", "dicomweb.refused"} <= actions


async def test_unknown_ae_and_known_ae_from_another_address_are_rejected_and_audited(cloud: Cloud) -> None:
    path = FIXTURES / "CT_small.dcm"
    stranger = await asyncio.to_thread(storescu, cloud.scp_port, path, aet="INTRUDER")
    assert "Association Rejected" in stranger.stderr + stranger.stdout
    elsewhere = await asyncio.to_thread(storescu, cloud.scp_port, path, aet="FARPACS")  # allowed from 10.20.30/24
    assert "Association Rejected" in elsewhere.stderr + elsewhere.stdout
    misaddressed = await asyncio.to_thread(storescu, cloud.scp_port, path, "-aec", "OTHER")  # last -aec wins
    assert "Association Rejected" in misaddressed.stderr + misaddressed.stdout
    assert cloud.store.instances() == []

    async def audited() -> list[Any]:
        rows = await cloud.sql("SELECT reason, detail FROM audit_log WHERE action = 'dicom-scp.refused' ORDER BY id")
        return rows if len(rows) == 3 else []

    rows = await until(audited)
    assert [r["reason"] for r in rows] == ["unknown_calling_aet", "address_not_allowed", "wrong_called_aet"]
    assert "INTRUDER" in rows[0]["detail"] and "FARPACS" in rows[1]["detail"]


async def test_a_resend_in_another_transfer_syntax_is_a_duplicate_and_new_content_a_conflict(
    cloud: Cloud, tmp_path: Path
) -> None:
    path = FIXTURES / "CT_small.dcm"
    first = await asyncio.to_thread(storescu, cloud.scp_port, path)  # storescu's default: Implicit VR
    assert first.returncode == 0 and "Status: 0x0000" in first.stderr + first.stdout, first.stderr
    [stored] = cloud.store.instances()
    assert split_part10(cloud.store.read(stored)).transfer_syntax_uid == IMPLICIT
    again = await asyncio.to_thread(storescu, cloud.scp_port, path, "-xe")  # Explicit VR this time
    assert "Status: 0x0000" in again.stderr + again.stdout, again.stderr
    token = await asyncio.to_thread(cloud.add_sender, "PACS1")
    answer = await asyncio.to_thread(stow, cloud.url, [pydicom.dcmread(path)], ("PACS1", token))  # and by STOW-RS
    assert "FailedSOPSequence" not in answer
    assert cloud.store.instances() == [stored] and list(cloud.store.rejected.glob("*.bin")) == []
    changed = pydicom.dcmread(path)
    changed.SpecificCharacterSet, changed.PatientName = "ISO_IR 192", "改^名"
    changed_path = tmp_path / "changed.dcm"
    changed.save_as(changed_path)
    conflict = await asyncio.to_thread(storescu, cloud.scp_port, changed_path, "-xe")
    assert "Status: 0x0111" in conflict.stderr + conflict.stdout, conflict.stderr
    assert len(list(cloud.store.rejected.glob("*.bin"))) == 1  # kept for inspection


async def test_objects_are_encrypted_at_rest_and_open_with_the_cloud_key(cloud: Cloud) -> None:
    token = await asyncio.to_thread(cloud.add_sender, "PACS1")
    patient = pacs_data.Patient(name="李^晓红")
    ds = pydicom.dcmread(BytesIO(pacs_data.to_part10(pacs_data.basic_text_sr(patient, "ISO_IR 192", "4A"))))
    await asyncio.to_thread(stow, cloud.url, [ds], ("PACS1", token))
    [path] = cloud.store.instances()
    raw = path.read_bytes()
    assert raw.startswith(SEALED_MAGIC)
    for secret in (patient.national_id.encode(), "李".encode(), b"DICM"):
        assert secret not in raw
    plain = cloud.store.read(path)
    assert pydicom.dcmread(BytesIO(plain)).SOPInstanceUID == ds.SOPInstanceUID
    assert (await cloud.sql("SELECT path FROM dicom_instances"))[0]["path"] == str(path)


async def test_the_admin_console_creates_and_revokes_a_sender_and_the_revoked_one_is_refused_at_once(
    cloud: Cloud,
) -> None:
    db = await Database.connect(cloud.cfg.database.url, 1)
    try:
        await users.create_user(db, "root", PASSWORD, roles=["admin"], actor="test")
        secret, _ = await user_totp.enable_totp(db, AtRest(cloud.keys.at_rest, cloud.keys.blind_index), "root",
                                            actor="test")
    finally:
        await db.close()
    async with httpx.AsyncClient(base_url=cloud.url) as c:
        await sign_in(c, "root", secret)
        page = await c.get("/ui/admin/dicom-senders")
        assert page.status_code == 200 and "尚无 DICOM 发送方" in page.text
        r = await c.post("/ui/admin/dicom-senders", data={"name": "PACS-RAD", "note": "放射科 PACS",
                                                          "csrf_token": csrf_from(page.text)})
        assert r.status_code == 200 and 'id="sender-token"' in r.text and "no-store" in r.headers["cache-control"]
        token = r.text.split('id="sender-token">')[1].split("<")[0]
        later = await c.get("/ui/admin/dicom-senders")
        assert token not in later.text and 'id="sender-PACS-RAD"' in later.text  # shown once
        ct = pydicom.dcmread(FIXTURES / "CT_small.dcm")
        answer = await asyncio.to_thread(stow, cloud.url, [ct], ("PACS-RAD", token))
        assert "FailedSOPSequence" not in answer
        bad = await c.post("/ui/admin/dicom-senders", data={"name": "no spaces!", "csrf_token": csrf_from(later.text)})
        assert "error=" in bad.headers["location"]
        r = await c.post("/ui/admin/dicom-senders/PACS-RAD/revoke", data={"csrf_token": csrf_from(later.text)})
        assert r.status_code == 303 and "ok=PACS-RAD" in r.headers["location"]
        with pytest.raises(requests.HTTPError) as revoked:
            await asyncio.to_thread(stow, cloud.url, [ct], ("PACS-RAD", token))
        assert status_of(revoked.value) == 401
        assert "已吊销" in (await c.get("/ui/admin/dicom-senders")).text
    rows = await cloud.sql("SELECT actor, action FROM audit_log WHERE action LIKE 'dicom_sender.%' ORDER BY id")
    assert [(r["actor"], r["action"]) for r in rows] == [("web:root", "dicom_sender.add"),
                                                         ("web:root", "dicom_sender.revoke")]
