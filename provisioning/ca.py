"""The fleet certificate authority: one per deployment, issues short-lived hub certificates.

**Key type: Ed25519.** Every hub key is already Ed25519 (the sync protocol signs batches
with it), so every party that checks a hub certificate must speak Ed25519 anyway; using
the same algorithm for the CA adds no new requirement. Ed25519 signatures are
deterministic (no per-signature nonce whose reuse would leak the key, the classic ECDSA
failure), keys and signatures are small, and verification is fast on a Raspberry Pi.
ECDSA P-256 would only win for TLS stacks or HSMs without Ed25519; Mosquitto (OpenSSL
>= 1.1.1) and ``cryptography`` both handle Ed25519 certificates.

Files written by :meth:`FleetCA.save` (directory 0700, files 0600, never overwritten):

* ``ca.key.pem`` — PKCS#8 private key encrypted with the passphrase
  (``BestAvailableEncryption``: AES-256-CBC with a scrypt-derived key in current OpenSSL);
* ``ca.cert.pem`` — the self-signed CA certificate (public; published in the CA bundle).

A hub certificate carries: subject ``CN=<hub id>, OU=<site id>, O=mchub fleet,
serialNumber=<hardware serial>``; SAN ``URI:urn:mchub:hub:<hub id>``; KeyUsage
digitalSignature (critical); ExtendedKeyUsage clientAuth (MQTT over TLS); BasicConstraints
CA:false (critical); validity :data:`DEFAULT_HUB_VALIDITY_MS` (30 days) starting
:data:`BACKDATE_MS` before issue, for hubs whose clock runs slow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Container, Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provisioning.errors import (
    CaError,
    CaExists,
    CertificateExpired,
    CertificateRevoked,
    UntrustedCertificate,
    WrongPassphrase,
)
from provisioning.keyfiles import write_private_file
from provisioning.verified import FleetCaKey

KEY_FILE = "ca.key.pem"
CERT_FILE = "ca.cert.pem"
DEFAULT_HUB_VALIDITY_MS = 30 * 86_400_000
DEFAULT_CA_VALIDITY_MS = 10 * 365 * 86_400_000
BACKDATE_MS = 3_600_000
MIN_PASSPHRASE = 12
ORGANIZATION = "mchub fleet"
URI_PREFIX = "urn:mchub:hub:"


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, hex (what ``ca show`` prints and hubs may pin)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def fleet_ca_key(ca_cert: x509.Certificate) -> FleetCaKey:
    """The fleet CA's public key and fingerprint (what a key bundle is checked against)."""
    key = ca_cert.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UntrustedCertificate("the fleet CA certificate does not hold an Ed25519 key")
    return FleetCaKey(key.public_bytes_raw(), fingerprint(ca_cert))


def load_certificate(pem: str | bytes) -> x509.Certificate:
    """Parse a PEM certificate; malformed input is an :class:`UntrustedCertificate`."""
    try:
        return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as exc:
        raise UntrustedCertificate(f"not a PEM certificate: {exc}") from exc


def certificate_pem(cert: x509.Certificate) -> str:
    """PEM text of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


@dataclass(frozen=True)
class HubIdentity:
    """What a verified hub certificate says."""

    hub_id: str
    site_id: str
    hub_serial: str
    cert_serial: str  #: hex
    public_raw: bytes
    not_after_ms: int


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1:
        raise UntrustedCertificate(f"certificate subject must have exactly one {oid._name}")
    value = values[0].value
    return value if isinstance(value, str) else value.decode()


def verify_hub_certificate(
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    *,
    now_ms: int,
    revoked_serials: Container[str] = (),
) -> HubIdentity:
    """Check a hub certificate against the fleet CA; return who it names.

    Raises :class:`UntrustedCertificate` (another CA, bad signature, not a hub
    certificate), :class:`CertificateExpired` (outside validity) or
    :class:`CertificateRevoked` (serial in ``revoked_serials``), in that order.
    """
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise UntrustedCertificate(
            f"certificate for {cert.subject.rfc4514_string()!r} was not issued by this fleet CA "
            f"({ca_cert.subject.rfc4514_string()}): {exc or 'signature does not verify'}"
        ) from exc
    key = cert.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UntrustedCertificate("hub certificates carry an Ed25519 key")
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound as exc:
        raise UntrustedCertificate("hub certificate lacks BasicConstraints") from exc
    if basic.ca:
        raise UntrustedCertificate("a CA certificate cannot act as a hub certificate")
    if not cert.not_valid_before_utc <= _utc(now_ms) <= cert.not_valid_after_utc:
        raise CertificateExpired(
            f"hub certificate is valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, not now; the hub must rotate its key "
            "(or re-enroll with a new token if it was offline past expiry)"
        )
    serial = format(cert.serial_number, "x")
    if serial in revoked_serials:
        raise CertificateRevoked(f"hub certificate {serial} has been revoked")
    return HubIdentity(
        hub_id=_attr(cert.subject, NameOID.COMMON_NAME),
        site_id=_attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME),
        hub_serial=_attr(cert.subject, NameOID.SERIAL_NUMBER),
        cert_serial=serial,
        public_raw=key.public_bytes_raw(),
        not_after_ms=_ms(cert.not_valid_after_utc),
    )


class FleetCA:
    """The CA private key and certificate. Create with :meth:`create`, open with :meth:`load`."""

    def __init__(self, key: ed25519.Ed25519PrivateKey, cert: x509.Certificate) -> None:
        self._key = key
        self.cert = cert

    @classmethod
    def create(cls, name: str, *, now_ms: int, validity_ms: int = DEFAULT_CA_VALIDITY_MS) -> FleetCA:
        """A new CA with a fresh key (nothing written yet)."""
        key = ed25519.Ed25519PrivateKey.generate()
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_utc(now_ms - BACKDATE_MS))
            .not_valid_after(_utc(now_ms + validity_ms))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, None)
        )
        return cls(key, cert)

    def save(self, directory: Path, passphrase: bytes) -> None:
        """Write ``ca.key.pem`` (encrypted) and ``ca.cert.pem``; refuse to overwrite."""
        if len(passphrase) < MIN_PASSPHRASE:
            raise CaError(f"CA 口令太短 / the CA passphrase must have at least {MIN_PASSPHRASE} characters")
        for name in (KEY_FILE, CERT_FILE):
            if (directory / name).exists():
                raise CaExists(
                    f"{directory / name} already exists; a CA is created once. Use another --dir, "
                    "or remove the old CA only if no hub trusts it any more"
                )
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)
        key_pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )
        write_private_file(directory / KEY_FILE, key_pem)
        write_private_file(directory / CERT_FILE, certificate_pem(self.cert).encode())

    @classmethod
    def load(cls, directory: Path, passphrase: bytes) -> FleetCA:
        """Open a CA written by :meth:`save`; a wrong passphrase is :class:`WrongPassphrase`."""
        try:
            key_pem = (directory / KEY_FILE).read_bytes()
            cert_pem = (directory / CERT_FILE).read_bytes()
        except OSError as exc:
            raise CaError(
                f"cannot read the fleet CA in {directory}: {exc.strerror}; run `mchub provision ca init`"
            ) from exc
        try:
            key = serialization.load_pem_private_key(key_pem, password=passphrase)
        except ValueError as exc:
            raise WrongPassphrase(
                f"CA 口令错误 / the passphrase does not open {directory / KEY_FILE} (or the file is damaged)"
            ) from exc
        except TypeError as exc:
            raise CaError(f"{directory / KEY_FILE} is not encrypted; refusing an unprotected CA key") from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise CaError(f"{directory / KEY_FILE} is not an Ed25519 key")
        cert = load_certificate(cert_pem)
        if cert.public_key() != key.public_key():
            raise CaError(f"{directory / CERT_FILE} does not belong to the key in {directory / KEY_FILE}")
        return cls(key, cert)

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature by the CA key (used for the CA bundle)."""
        return self._key.sign(data)

    def issue_hub_certificate(
        self,
        public_key: ed25519.Ed25519PublicKey,
        *,
        hub_id: str,
        site_id: str,
        hub_serial: str,
        now_ms: int,
        validity_ms: int = DEFAULT_HUB_VALIDITY_MS,
    ) -> x509.Certificate:
        """Issue a hub certificate for a key the caller has already proven the hub holds."""
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, hub_id),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, site_id),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, hub_serial),
            ]
        )
        ca_ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        not_after = min(now_ms + validity_ms, _ms(self.cert.not_valid_after_utc))
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_utc(now_ms - BACKDATE_MS))
            .not_valid_after(_utc(not_after))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(URI_PREFIX + hub_id)]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(self._key, None)
        )

    def issue_crl(self, revoked: Iterable[tuple[str, int]], *, now_ms: int, next_update_ms: int) -> bytes:
        """A signed CRL (PEM) of ``(serial hex, revoked at ms)`` pairs, e.g. for Mosquitto's ``crlfile``."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(_utc(now_ms))
            .next_update(_utc(next_update_ms))
        )
        for serial, at_ms in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(int(serial, 16)).revocation_date(_utc(at_ms)).build()
            )
        return builder.sign(self._key, None).public_bytes(serialization.Encoding.PEM)


def key_fingerprint(public_raw: bytes) -> str:
    """Hex SHA-256 of a raw public key: how tokens remember which key used them."""
    return hashlib.sha256(public_raw).hexdigest()
