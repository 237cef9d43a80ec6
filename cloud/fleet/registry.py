"""Batch ingest's key lookup: the hub and signer key named by a batch header (hot path, no ORM).

Every change to hubs, keys and sites — enrollment, registration by hand, rotation,
revocation — goes through the one fleet registry, :class:`cloud.fleet.service.Fleet`
(CLI ``mchub cloud hub …``, ``/admin/v1``, ``/api/v1/admin``, the admin console). This
module only reads the rows it writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud.db.engine import Database, Tx


@dataclass(frozen=True)
class Signer:
    """What ingest learns about a batch's hub and signer key."""

    hub_status: str | None  #: None: hub unknown
    public_key: ed25519.Ed25519PublicKey | None  #: None: no valid key with that id


async def lookup_signer(db: Database | Tx, hub_id: str, signer_key_id: bytes, at_ms: int) -> Signer:
    """Find the hub and its key named by a batch header (valid at ``at_ms``, not revoked, certificate current)."""
    row = await db.fetchrow(
        "SELECT h.status, k.public_key, k.valid_from_ms, k.valid_to_ms, k.revoked_ms, k.not_after_ms FROM hubs h "
        "LEFT JOIN hub_keys k ON k.hub_id = h.hub_id AND k.key_id = $1 WHERE h.hub_id = $2",
        signer_key_id.hex(), hub_id)
    if row is None:
        return Signer(None, None)
    valid = (row["public_key"] is not None and row["revoked_ms"] is None and row["valid_from_ms"] <= at_ms
             and (row["valid_to_ms"] is None or row["valid_to_ms"] > at_ms)
             and (row["not_after_ms"] is None or row["not_after_ms"] >= at_ms))  # certificate (provisioning)
    key = ed25519.Ed25519PublicKey.from_public_bytes(bytes(row["public_key"])) if valid else None
    return Signer(row["status"], key)
