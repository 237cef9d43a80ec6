"""What the cloud holds to run provisioning: the CA, its signed bundle, its signing key.

The cloud builds one :class:`Authority` at start-up (``FleetCA.load`` with the passphrase
from its secret file, the HPKE and signing keys from its key store) and passes it to
:func:`~provisioning.enrollment.process_enrollment`,
:func:`~provisioning.rotation.process_rotation` and the admin handlers.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519

from provisioning.bundle import CloudKeys, SignedBundle, sign_bundle
from provisioning.ca import DEFAULT_HUB_VALIDITY_MS, FleetCA
from provisioning.errors import BundleError, NotFound
from provisioning.inventory import SignedConfig, render_config, sign_config
from provisioning.stores import HubRecord, Stores

#: how long the previous key keeps verifying after a rotation (batches already sealed and queued)
DEFAULT_OVERLAP_MS = 24 * 3_600_000


@dataclass(frozen=True)
class Authority:
    """The cloud's provisioning keys and settings."""

    ca: FleetCA
    bundle: SignedBundle
    signing_key: ed25519.Ed25519PrivateKey
    mqtt_url: str
    hub_validity_ms: int = DEFAULT_HUB_VALIDITY_MS
    overlap_ms: int = DEFAULT_OVERLAP_MS

    @classmethod
    def build(
        cls,
        ca: FleetCA,
        cloud: CloudKeys,
        signing_key: ed25519.Ed25519PrivateKey,
        *,
        mqtt_url: str,
        now_ms: int,
        hub_validity_ms: int = DEFAULT_HUB_VALIDITY_MS,
        overlap_ms: int = DEFAULT_OVERLAP_MS,
    ) -> Authority:
        """Sign the bundle for ``cloud`` (whose signing key must match ``signing_key``)."""
        if cloud.signing_key != signing_key.public_key():
            raise BundleError("the published signing key must be the public half of signing_key")
        return cls(ca, sign_bundle(ca, cloud, now_ms=now_ms), signing_key, mqtt_url, hub_validity_ms, overlap_ms)

    async def config_for(self, stores: Stores, hub: HubRecord, *, now_ms: int) -> SignedConfig:
        """The hub's current device configuration, signed with the cloud key."""
        site = await stores.sites.get(hub.site_id)
        if site is None:
            raise NotFound(f"site {hub.site_id} of hub {hub.hub_id} does not exist")
        config = render_config(
            hub_id=hub.hub_id, site_id=site.site_id, site_name=site.name,
            version=await stores.devices.config_version(hub.hub_id),
            devices=await stores.devices.list(hub.hub_id), now_ms=now_ms,
            station_names=await stores.devices.station_names(hub.hub_id),
        )
        return sign_config(config, self.signing_key)
