"""Fleet CA: files and passphrase, hub certificates, chain/validity/revocation checks, CRL."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provisioning.ca import (
    CERT_FILE,
    KEY_FILE,
    FleetCA,
    certificate_pem,
    fingerprint,
    load_certificate,
    verify_hub_certificate,
)
from provisioning.errors import (
    CaError,
    CaExists,
    CertificateExpired,
    CertificateRevoked,
    UntrustedCertificate,
    WrongPassphrase,
)
from tests.provisioning.conftest import DAY, NOW

PASS = b"correct horse battery staple"


def _issue(ca: FleetCA, key: ed25519.Ed25519PrivateKey | None = None, now: int = NOW) -> x509.Certificate:
    key = key or ed25519.Ed25519PrivateKey.generate()
    return ca.issue_hub_certificate(key.public_key(), hub_id="dongcheng-h01", site_id="dongcheng",
                                    hub_serial="PI-0001", now_ms=now)


def test_init_writes_an_encrypted_key_and_private_files(tmp_path: Path) -> None:
    ca = FleetCA.create("mchub fleet CA", now_ms=NOW)
    ca.save(tmp_path / "ca", PASS)
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    for name in (KEY_FILE, CERT_FILE):
        assert stat.S_IMODE((tmp_path / "ca" / name).stat().st_mode) == 0o600
    key_pem = (tmp_path / "ca" / KEY_FILE).read_text()
    assert "ENCRYPTED PRIVATE KEY" in key_pem
    loaded = FleetCA.load(tmp_path / "ca", PASS)
    assert fingerprint(loaded.cert) == fingerprint(ca.cert)
    assert sorted(p.name for p in (tmp_path / "ca").iterdir()) == sorted([KEY_FILE, CERT_FILE])  # no temp files left


def test_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    FleetCA.create("ca", now_ms=NOW).save(tmp_path, PASS)
    with pytest.raises(WrongPassphrase, match="passphrase does not open"):
        FleetCA.load(tmp_path, b"not the passphrase")


def test_init_never_overwrites_and_wants_a_long_passphrase(tmp_path: Path) -> None:
    FleetCA.create("ca", now_ms=NOW).save(tmp_path, PASS)
    with pytest.raises(CaExists):
        FleetCA.create("ca", now_ms=NOW).save(tmp_path, PASS)
    with pytest.raises(CaError, match="at least 12"):
        FleetCA.create("ca", now_ms=NOW).save(tmp_path / "other", b"short")


def test_missing_ca_directory_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(CaError, match="ca init"):
        FleetCA.load(tmp_path / "nowhere", PASS)


def test_hub_certificate_contents(fleet_ca: FleetCA) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    cert = _issue(fleet_ca, key)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dongcheng-h01"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "dongcheng"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:mchub:hub:dongcheng-h01"]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert ExtendedKeyUsageOID.CLIENT_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert cert.not_valid_after_utc.timestamp() * 1000 == NOW + 30 * DAY
    identity = verify_hub_certificate(cert, fleet_ca.cert, now_ms=NOW)
    assert (identity.hub_id, identity.site_id, identity.hub_serial) == ("dongcheng-h01", "dongcheng", "PI-0001")
    assert identity.public_raw == key.public_key().public_bytes_raw()


def test_certificate_from_another_ca_is_untrusted(fleet_ca: FleetCA) -> None:
    rogue = FleetCA.create(fleet_ca.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, now_ms=NOW)
    cert = _issue(rogue)  # same CA name, different key
    with pytest.raises(UntrustedCertificate, match="not issued by this fleet CA"):
        verify_hub_certificate(cert, fleet_ca.cert, now_ms=NOW)


def test_expired_and_not_yet_valid_certificates(fleet_ca: FleetCA) -> None:
    cert = _issue(fleet_ca)
    verify_hub_certificate(cert, fleet_ca.cert, now_ms=NOW + 30 * DAY)
    with pytest.raises(CertificateExpired, match="rotate"):
        verify_hub_certificate(cert, fleet_ca.cert, now_ms=NOW + 30 * DAY + 1000)
    with pytest.raises(CertificateExpired):
        verify_hub_certificate(cert, fleet_ca.cert, now_ms=NOW - 2 * 3_600_000)  # before the 1 h backdate


def test_revoked_serial(fleet_ca: FleetCA) -> None:
    cert = _issue(fleet_ca)
    with pytest.raises(CertificateRevoked):
        verify_hub_certificate(cert, fleet_ca.cert, now_ms=NOW, revoked_serials={format(cert.serial_number, "x")})


def test_the_ca_certificate_itself_is_not_a_hub_certificate(fleet_ca: FleetCA) -> None:
    with pytest.raises(UntrustedCertificate):
        verify_hub_certificate(fleet_ca.cert, fleet_ca.cert, now_ms=NOW)


def test_hub_certificate_never_outlives_the_ca(fleet_ca: FleetCA) -> None:
    cert = _issue(fleet_ca, now=int(fleet_ca.cert.not_valid_after_utc.timestamp() * 1000) - DAY)
    assert cert.not_valid_after_utc == fleet_ca.cert.not_valid_after_utc


def test_non_ed25519_hub_key_is_untrusted(fleet_ca: FleetCA) -> None:
    # a certificate for an EC key, properly signed by the CA: still not a hub certificate
    ec_key = ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
    cert = (b.issuer_name(fleet_ca.cert.subject).public_key(ec_key.public_key()).serial_number(1)
            .not_valid_before(fleet_ca.cert.not_valid_before_utc).not_valid_after(fleet_ca.cert.not_valid_after_utc)
            .sign(fleet_ca._key, None))
    with pytest.raises(UntrustedCertificate, match="Ed25519"):
        verify_hub_certificate(cert, fleet_ca.cert, now_ms=NOW)


def test_garbage_pem_is_untrusted() -> None:
    with pytest.raises(UntrustedCertificate):
        load_certificate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


def test_crl_lists_revoked_serials_and_is_signed_by_the_ca(fleet_ca: FleetCA) -> None:
    cert = _issue(fleet_ca)
    serial = format(cert.serial_number, "x")
    crl = x509.load_pem_x509_crl(fleet_ca.issue_crl([(serial, NOW)], now_ms=NOW, next_update_ms=NOW + DAY))
    assert crl.is_signature_valid(fleet_ca.cert.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert certificate_pem(fleet_ca.cert).startswith("-----BEGIN CERTIFICATE-----")
