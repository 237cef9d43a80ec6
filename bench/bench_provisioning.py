"""Provisioning costs that sit on request paths: run with ``.venv/bin/python bench/bench_provisioning.py``.

* ``resolve_signer`` runs once per uploaded batch (the ingest hot path): key lookup only,
  compared with the Ed25519 verification the batch needs anyway (the baseline);
* ``verify_hub_certificate`` would run per TLS/MQTT client-certificate check;
* ``process_enrollment`` and ``process_rotation`` run once per hub per month: shown so a
  fleet-wide re-enrollment (1,100 hubs of a city) can be sized;
* ``auth.login`` is deliberately slow (scrypt N=2^15): the figure is the cost per login.

In-memory stores, so figures are CPU only (the cloud adds its database round trips).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.keys import RecipientPrivate, SuiteId, signing_key_id
from provisioning import admin, auth, totp
from provisioning.authority import Authority
from provisioning.bundle import CloudKeys
from provisioning.ca import FleetCA, load_certificate, verify_hub_certificate
from provisioning.enrollment import build_request, process_enrollment
from provisioning.hubs import resolve_signer
from provisioning.rotation import build_rotation, process_rotation
from tests.provisioning.memory import memory_stores

NOW = 1_750_000_000_000


def rate(label: str, n: int, fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    per_s = n / (time.perf_counter() - start)
    print(f"{label:44} {per_s:12,.0f} /s  ({1e6 / per_s:9.1f} µs each)")
    return per_s


async def measure() -> dict[str, float]:
    """Every figure, printed as it is measured and returned for ``mchub bench``."""
    out: dict[str, float] = {}
    ca = FleetCA.create("bench CA", now_ms=NOW)
    recipients = [RecipientPrivate.generate(SuiteId.X25519_AES256GCM)]
    signing = ed25519.Ed25519PrivateKey.generate()
    authority = Authority.build(ca, CloudKeys(tuple(r.public() for r in recipients), signing.public_key()), signing,
                                mqtt_url="mqtt://x", now_ms=NOW)
    stores = memory_stores()
    await admin.add_site(stores, site_id="s", name="site", actor="bench", now_ms=NOW)

    n_hubs = 200
    keys, start = [], time.perf_counter()
    for i in range(n_hubs):
        key = ed25519.Ed25519PrivateKey.generate()
        token = (await admin.create_token(stores, site_id="s", actor="bench", now_ms=NOW)).text
        await process_enrollment(build_request(key, token, f"PI-{i}"), stores, authority, now_ms=NOW)
        keys.append(key)
    enroll_s = (time.perf_counter() - start) / n_hubs
    out["enrollments/s"] = 1 / enroll_s
    print(f"{'enrollment (token + CSR + cert + config)':44} {1 / enroll_s:12,.0f} /s  ({enroll_s * 1e6:9.1f} µs each)")
    start = time.perf_counter()
    for i, key in enumerate(keys[:100]):
        await process_rotation(build_rotation(f"s-h{i + 1:02d}", key, ed25519.Ed25519PrivateKey.generate()),
                               stores, authority, now_ms=NOW + 1000)
    rot_s = (time.perf_counter() - start) / 100
    out["rotations/s"] = 1 / rot_s
    print(f"{'rotation (two signatures + cert)':44} {1 / rot_s:12,.0f} /s  ({rot_s * 1e6:9.1f} µs each)")

    hub_id, key_id = "s-h150", signing_key_id(keys[149].public_key())
    loop_n = 20_000
    start = time.perf_counter()
    for _ in range(loop_n):
        await resolve_signer(stores, hub_id, key_id, now_ms=NOW + 2000)
    resolve = loop_n / (time.perf_counter() - start)
    print(f"{'resolve_signer (per batch)':44} {resolve:12,.0f} /s  ({1e6 / resolve:9.1f} µs each)")
    message, sig = b"x" * 4096, keys[149].sign(b"x" * 4096)
    verify = rate("baseline: Ed25519 verify of a 4 KiB batch", 5_000,
                  lambda: keys[149].public_key().verify(sig, message))
    print(f"{'  ratio resolve_signer / baseline verify':44} {resolve / verify:12.1f} x faster")
    out["resolve_signer/s"], out["baseline Ed25519 verify 4 KiB/s"] = resolve, verify
    out["ratio resolve_signer / verify"] = resolve / verify

    hub = await stores.hubs.get("s-h150")
    assert hub is not None
    cert = load_certificate(hub.keys[-1].cert_pem)
    out["verify_hub_certificate/s"] = rate(
        "verify_hub_certificate", 2_000, lambda: verify_hub_certificate(cert, ca.cert, now_ms=NOW + 2000))

    secret = totp.new_secret()
    user = auth.AdminUser(username="a", role="admin", password_hash=auth.hash_password("Correct-Horse-9"),
                          totp_secret=secret)
    code = totp.totp(totp.decode_secret(secret), NOW / 1000)
    out["admin logins/s (scrypt)"] = rate(
        "admin login (scrypt N=2^15 + TOTP)", 10, lambda: auth.login(user, "Correct-Horse-9", code, now_ms=NOW))
    return out


def run() -> dict[str, float]:
    """Figures for ``mchub bench``."""
    return asyncio.run(measure())


if __name__ == "__main__":
    run()
