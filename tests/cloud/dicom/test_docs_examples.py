"""Every DICOM configuration example in docs/ is one the cloud accepts (issue 16 "Every configuration
example in docs/ is checked by a test"), and the proxy block passes STOW-RS credentials on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloud.config import parse
from cloud.dicom.service import DicomConfig

DOCS = Path(__file__).resolve().parents[3] / "docs"
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def blocks(page: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall((DOCS / page).read_text(encoding="utf-8")) if lang == language]


DICOM_TOML = [b for page in sorted(p.name for p in DOCS.glob("*.md")) for b in blocks(page, "toml") if "[dicom" in b]


def test_there_are_examples_to_check() -> None:
    assert DICOM_TOML and blocks("dicom.md", "toml")


@pytest.mark.parametrize("example", DICOM_TOML)
def test_each_dicom_toml_example_loads(example: str, tmp_path: Path) -> None:
    cfg = parse(example, tmp_path / "cloud.toml")
    assert cfg.dicom.enabled
    dicom = cfg.dicom
    assert dicom.object_dir == tmp_path / "dicom"
    assert all(dicom.allowed_calling_aets.values())  # every AE title bound to addresses


def test_the_proxy_example_passes_credentials_and_streams_the_body() -> None:
    [block] = [b for b in blocks("deployment.md", "nginx") if "/dicomweb/" in b]
    assert "proxy_set_header Authorization $http_authorization;" in block
    assert "proxy_request_buffering off;" in block
    size = int(re.search(r"client_max_body_size (\d+)m;", block).group(1))  # type: ignore[union-attr]
    assert size >= DicomConfig.from_mapping({"object_dir": "/x", "scp_enabled": False}).max_body_bytes >> 20
    shipped = (DOCS.parent / "deploy" / "cloud" / "nginx.conf").read_text(encoding="utf-8")
    for line in block.strip().splitlines()[1:-1]:
        assert line.strip() in shipped, line  # the doc shows the shipped block
