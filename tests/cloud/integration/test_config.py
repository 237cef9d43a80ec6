"""[mllp], [his] and [dicom] in cloud.toml: defaults off, errors name the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.config import EXAMPLE, parse
from cloud.errors import ConfigError

P = Path("/etc/mchub/cloud.toml")


def test_the_example_has_the_integration_off() -> None:
    cfg = parse(EXAMPLE, P)
    assert not cfg.mllp.enabled and not cfg.his.enabled and not cfg.dicom.enabled
    assert cfg.mllp.port == 2575 and cfg.dicom.scp_port == 11112
    assert cfg.dicom.object_dir == Path("/etc/mchub/dicom")


def test_code_map_and_tls_paths(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    cfg = parse('[mllp]\nenabled = true\ntls_cert = "c.pem"\ntls_key = "k.pem"\n'
                '[mllp.code_map.L]\nHPV16 = "59263-4"\n', tmp_path / "cloud.toml")
    assert cfg.mllp.tls_cert == tmp_path / "c.pem" and cfg.mllp.code_map == {"L": {"HPV16": "59263-4"}}


@pytest.mark.parametrize(("text", "where", "fix"), [
    ("[mllp]\nport = 0", "[mllp] port", "above 0"),
    ("[mllp]\nprot = 1", "[mllp] prot", "did you mean 'port'"),
    ("[mllp]\ntls_cert = \"c.pem\"", "[mllp] tls_cert / tls_key", "set both"),
    ("[mllp]\nenabled = true\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"", "[mllp] tls_cert", "PEM"),
    ("[mllp.code_map.L]\nHPV16 = \"59263-5\"", "[mllp] code_map.L.HPV16", "NNNNN-N"),
    ("[his]\nack_timeout_s = \"30\"", "[his] ack_timeout_s", "ack_timeout_s = 30"),
    ("[his]\nattempts = 0", "[his] attempts", "above 0"),
    ("[dicom]\nenabled = true", "[dicom] object_dir", "writable directory"),
    ("[dicom]\nenabled = true\nobject_dir = \"d\"", "[dicom] allowed_calling_aets", "PACS AE titles"),
    ("[dicom]\nallowed_calling_aets = \"PACS\"", "[dicom] allowed_calling_aets", "expected dict"),
    ("[dicom]\nenabled = true\nobject_dir = \"d\"\nallowed_calling_aets = [\"PACS1\"]", "[dicom] allowed_calling_aets",
     'PACS1 = ["10.1.2.3"]'),
    ("[dicom]\nenabled = true\nobject_dir = \"d\"\nallowed_calling_aets = { PACS1 = [\"pacs.lan\"] }",
     "[dicom] allowed_calling_aets.PACS1", "not an IP address"),
])
def test_errors_name_file_key_and_fix(text: str, where: str, fix: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(text, P)
    message = str(err.value)
    assert message.startswith(f"{P}: {where}"), message
    assert fix in message
