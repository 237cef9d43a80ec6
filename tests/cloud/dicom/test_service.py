"""DicomService: configuration errors that name file, key and fix; routes and SCP together."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette

from cloud.dicom.service import DicomConfig, DicomConfigError, DicomService
from firmware_sim import pacs, pacs_data
from tests.cloud.dicom.conftest import Recorder, serve


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({}, "object_dir"),
        ({"object_dir": "/x"}, "allowed_calling_aets"),
        ({"object_dir": "/x", "allowed_calling_aets": "PACS"}, "allowed_calling_aets"),
        ({"object_dir": "/x", "allowed_calling_aets": ["PACS"]}, "allowed_calling_aets"),
        ({"object_dir": "/x", "allowed_calling_aets": {"PACS": []}}, "allowed_calling_aets.PACS"),
        ({"object_dir": "/x", "allowed_calling_aets": {"PACS": ["pacs.lan"]}}, "allowed_calling_aets.PACS"),
        ({"object_dir": "/x", "allowed_calling_aets": {"P": ["10.1.2.3"]}, "scp_port": 70000}, "scp_port"),
        ({"object_dir": "/x", "allowed_calling_aets": {"P": ["10.1.2.3"]}, "max_body_mb": 0}, "max_body_mb"),
        ({"object_dir": "/x", "allowed_calling_aets": {"P": ["10.1.2.3"]}, "port": 1}, "port"),
    ],
)
def test_config_errors_name_file_key_and_fix(table: dict, key: str) -> None:
    with pytest.raises(DicomConfigError) as info:
        DicomConfig.from_mapping(table, "/etc/mchub/cloud.toml")
    message = str(info.value)
    assert message.startswith(f"/etc/mchub/cloud.toml: [dicom] {key}:") and "Fix:" in message


@pytest.mark.parametrize(("table", "message"), [
    ({"object_dir": "/x", "scp_enabled": False, "scp_port": "11112"},
     "/etc/mchub/cloud.toml: [dicom] scp_port: '11112' is a str, expected int.\n  Fix: use 11112 (or any 1-65535)"),
    ({"object_dir": "/x", "scp_enabled": False, "max_body_mb": -5},
     "/etc/mchub/cloud.toml: [dicom] max_body_mb: -5 is out of range.\n  Fix: max_body_mb = 512"),
])
def test_a_wrong_type_or_range_is_worded_like_the_rest_of_cloud_toml(table: dict, message: str) -> None:
    with pytest.raises(DicomConfigError) as info:
        DicomConfig.from_mapping(table, "/etc/mchub/cloud.toml")
    assert str(info.value) == message


def test_config_defaults_and_issuers(tmp_path: Path) -> None:
    cfg = DicomConfig.from_mapping({"object_dir": str(tmp_path), "scp_enabled": False,
                                    "national_id_issuers": ["sfz"]})
    assert cfg.scp_port == 11112 and cfg.ae_title == "MCHUB" and cfg.issuers == {"SFZ"}


async def test_service_serves_both_transports(tmp_path: Path) -> None:
    recorder = Recorder()
    cfg = DicomConfig.from_mapping({"object_dir": str(tmp_path), "allowed_calling_aets": {"SIMPACS": ["127.0.0.1"]},
                                    "scp_host": "127.0.0.1", "scp_port": 0})
    service = DicomService(cfg, recorder, authorise=None)
    await service.start()
    try:
        assert service.scp_port
        async for port in serve(Starlette(routes=service.routes())):
            answer = await pacs.stow(f"http://127.0.0.1:{port}/dicomweb", [pacs_data.to_part10(pacs_data.ultrasound())])
            assert answer.status == 200
        statuses = await pacs.cstore_async([pacs_data.mammogram()], "127.0.0.1", service.scp_port)
        assert statuses[0].status == 0
    finally:
        await service.stop()
    assert {i.family for i, _ in recorder.seen} == {"US", "MG"}
    assert len(service.store.instances()) == 2
