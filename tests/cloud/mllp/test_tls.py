"""MLLP over TLS: the listener takes an ssl.SSLContext; a self-signed certificate made here."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloud.mllp.client import MllpSender
from cloud.mllp.db_store import Hl7Store
from cloud.mllp.server import ListenerConfig, MllpListener
from firmware_sim.his import lab_message


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mllp.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_messages_over_tls(tmp_path: Path, sqlite_store: Hl7Store) -> None:
    cert, key = self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    config = ListenerConfig(host="127.0.0.1", port=0, ssl=server_ctx)
    async with MllpListener(sqlite_store, config) as listener, \
            MllpSender("127.0.0.1", listener.port, ssl_context=client_ctx, ack_timeout=5) as sender:
        assert (await sender.send(lab_message(1))).code == "AA"
        assert (await sender.send(lab_message(2))).code == "AA"
    assert len(await sqlite_store.fetch_pending()) == 2
