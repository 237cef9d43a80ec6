"""The ``[dicom]`` table of ``cloud.toml``, declared once: it is both the file's section and
the DICOM service's configuration (:class:`cloud.dicom.service.DicomService`).

    [dicom]
    enabled = true                          # off by default
    object_dir = "/var/lib/mchub/dicom"     # required: where instances are stored
    allowed_calling_aets = { PACS1 = ["10.1.2.3", "10.1.9.0/24"] }  # AE title -> addresses; required
                                            # when the SCP is enabled
    scp_enabled = true                      # C-STORE SCP on/off (default true)
    scp_host = "0.0.0.0"
    scp_port = 11112
    ae_title = "MCHUB"
    max_body_mb = 512                       # STOW-RS request limit
    national_id_issuers = ["NNCHN", "身份证"] # replaces the default list

Each key's type, default and bounds are declared in :class:`DicomConfig`; the rules that
span keys (an enabled SCP needs allowed callers, each bound to addresses) are
:meth:`DicomConfig.checked`'s. This module does not import pydicom: cloud.toml is read
(and checked) on clouds that run without DICOM.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from cloud.config.checks import Section, config_error
from cloud.config.checks import err as _err
from cloud.dicom.errors import DicomError
from protocol.settings import SettingError, decode

_AETS_EXAMPLE = 'allowed_calling_aets = { PACS1 = ["10.1.2.3"] } (AE title = the addresses it sends from)'
_OBJECT_DIR_FIX = 'set object_dir = "/var/lib/mchub/dicom" (a writable directory)'


class DicomConfigError(DicomError):
    """The ``[dicom]`` configuration is wrong; the message names the file, key and fix."""

    reason = "config"


class DicomConfig(Section, frozen=True):
    """[dicom]: the DICOM intake (STOW-RS routes and the C-STORE SCP)."""

    enabled: bool = False
    #: where instances are stored (required when enabled; relative to cloud.toml's directory)
    object_dir: Annotated[Path, Meta(examples=["/var/lib/mchub/dicom"], description=_OBJECT_DIR_FIX)] | None = None
    #: AE title -> the addresses or networks it may send from (a bare list is refused by :meth:`checked`)
    allowed_calling_aets: Annotated[dict[str, list[str]] | list[str], Meta(description=f"write {_AETS_EXAMPLE}")] = \
        msgspec.field(default_factory=dict)
    scp_enabled: bool = True
    scp_host: str = "0.0.0.0"
    scp_port: Annotated[int, Meta(ge=0, le=65535, description="use 11112 (or any 1-65535)")] = 11112
    ae_title: str = "MCHUB"
    max_body_mb: Annotated[int, Meta(ge=1, description="max_body_mb = 512")] = 512  #: STOW-RS request limit
    #: issuers of national IDs (upper-cased by :meth:`checked`); empty: cloud.dicom.index's list
    national_id_issuers: Annotated[tuple[str, ...], Meta(examples=[["NNCHN", "身份证"]])] = ()

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_mb * 1024 * 1024

    @property
    def calling_aets(self) -> dict[str, tuple[str, ...]]:
        """``allowed_calling_aets`` as the SCP takes it (a list was refused by :meth:`checked`)."""
        aets = self.allowed_calling_aets
        return {str(t): tuple(a) for t, a in aets.items()} if isinstance(aets, dict) else {}

    @property
    def issuers(self) -> frozenset[str]:
        """``national_id_issuers``, or the default list when none are configured."""
        if self.national_id_issuers:
            return frozenset(self.national_id_issuers)
        from cloud.dicom.index import NATIONAL_ID_ISSUERS  # pydicom: only when DICOM is on

        return NATIONAL_ID_ISSUERS

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], source: str = "cloud.toml") -> DicomConfig:
        """A ``[dicom]`` table (as parsed) for a service about to run: decoded and :meth:`checked`;
        :class:`DicomConfigError` naming file, key and fix."""
        try:
            cfg = decode(table, cls)
        except SettingError as exc:
            p = dataclasses.replace(exc.problem, key=("dicom", *exc.problem.key))
            raise DicomConfigError(str(config_error(Path(source), p))) from None
        return cfg.checked(source)

    def checked(self, source: str = "cloud.toml") -> DicomConfig:
        """The rules across keys for a service about to run; DicomConfigError naming file, key and fix."""

        def fail(key: str, problem: str, fix: str) -> DicomConfigError:
            return DicomConfigError(str(_err(Path(source), f"[dicom] {key}", problem, fix)))

        if self.object_dir is None:
            raise fail("object_dir", "missing", _OBJECT_DIR_FIX)
        aets = self.allowed_calling_aets
        if isinstance(aets, list):
            raise fail("allowed_calling_aets", "a list of AE titles is not enough: each title must be bound to the "
                       "addresses it may send from", f"write {_AETS_EXAMPLE}")
        if aets:
            from cloud.dicom.scp import ScpConfigError, parse_networks  # pynetdicom: only when DICOM is on

            for title, addresses in aets.items():
                try:
                    parse_networks(title, addresses)
                except ScpConfigError as exc:
                    raise fail(f"allowed_calling_aets.{title}", str(exc).split(": ", 1)[-1].split(", e.g.")[0],
                               f"write {_AETS_EXAMPLE}") from exc
        elif self.scp_enabled:
            raise fail("allowed_calling_aets", "empty while the C-STORE SCP is enabled",
                       "list the PACS AE titles allowed to send, or set scp_enabled = false")
        return msgspec.structs.replace(
            self, national_id_issuers=tuple(i.strip().upper() for i in self.national_id_issuers))
