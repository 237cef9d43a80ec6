"""Sync envelope throughput: seal and open batches of readings, bytes on the wire per reading.

Baseline in the same run: the same readings as JSON (msgspec) compressed with zlib, no
crypto — the naive encoding the compact body replaces.

    .venv/bin/python bench/bench_envelope.py [--batch 1000]
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec
from cryptography.hazmat.primitives.asymmetric import ed25519

from bench.common import machine, rate, sample_readings
from protocol import envelope
from protocol.batch import encode_records
from protocol.keys import RecipientPrivate, SuiteId


def run(batch: int = 1000) -> dict[str, float]:
    """Measure and return the figures (also used by ``mchub bench``)."""
    records = sample_readings(batch)
    hub = ed25519.Ed25519PrivateKey.generate()
    results: dict[str, float] = {}
    for suite in SuiteId:
        cloud = RecipientPrivate.generate(suite)
        public = cloud.public()
        keys = {public.key_id: cloud}
        sealed = envelope.seal(records, hub_id="hub-0001", epoch=12345, signer=hub, recipient=public)
        results[f"seal {suite.label} readings/s"] = rate(batch, lambda p=public: envelope.seal(
            records, hub_id="hub-0001", epoch=12345, signer=hub, recipient=p))
        results[f"open {suite.label} readings/s"] = rate(batch, lambda s=sealed, k=keys: envelope.open_batch(
            s, signer=hub.public_key(), recipients=k))
        results[f"wire bytes/reading {suite.label}"] = len(sealed) / batch
    json_zlib = zlib.compress(msgspec.json.encode(records), 6)
    results["baseline json+zlib bytes/reading"] = len(json_zlib) / batch
    results["baseline json+zlib encode readings/s"] = rate(
        batch, lambda: zlib.compress(msgspec.json.encode(records), 6))
    results["compact body bytes/reading"] = len(encode_records(records)) / batch
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1000, help="readings per batch (default 1000)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"batch: {args.batch} readings (BP, temperature, weight; raw frames included)")
    res = run(args.batch)
    for name, value in res.items():
        print(f"  {name:<45} {value:>12,.1f}")
    ratio = res["baseline json+zlib bytes/reading"] / res["wire bytes/reading x25519-aes256gcm"]
    print(f"  {'size ratio json+zlib / sealed batch':<45} {ratio:>12.2f}x")


if __name__ == "__main__":
    main()
