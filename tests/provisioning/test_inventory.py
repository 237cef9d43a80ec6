"""Device inventory: validation, the signed configuration document, and applying it without restart."""

from __future__ import annotations

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from provisioning import admin
from provisioning.enrollment import accept_response
from provisioning.errors import ConfigDocumentError, HubRevoked, InventoryError, NotFound
from provisioning.hubs import revoke_hub
from provisioning.inventory import (
    SHIPPED_KINDS,
    HubConfig,
    diff_devices,
    render_config,
    should_apply,
    sign_config,
    validate_device,
    verify_config,
)
from provisioning.stores import DeviceRecord
from tests.provisioning.conftest import NOW, Cloud


def _device(**changes: object) -> DeviceRecord:
    base = DeviceRecord(device_id="s1-ble-bp", hub_id="h", station=1, kind="ble-bp", transport="ble",
                        address="aa-bb-cc-dd-ee-ff")
    return msgspec.structs.replace(base, **changes)


def test_addresses_are_checked_per_transport_and_normalised() -> None:
    assert validate_device(_device()).address == "AA:BB:CC:DD:EE:FF"
    validate_device(_device(kind="serial-station", transport="serial", address="/dev/ttyUSB0"))
    validate_device(_device(kind="modbus-rtu", transport="modbus-rtu", address="/dev/ttyAMA0", port=3))
    validate_device(_device(kind="serial-station", transport="tcp", address="192.168.1.20", port=4001))
    validate_device(_device(kind="serial-station", transport="tcp", address="station-2.clinic.lan", port=4001))


def test_only_driver_kinds_mchub_ships_are_accepted() -> None:
    from drivers.registry import driver_kinds

    assert sorted(SHIPPED_KINDS) == sorted(driver_kinds())  # one list, kept equal to the registry
    for kind in ("synthetic", "sim-ble-bp", "test-line", "serial-hw"):  # simulators and made-up kinds
        with pytest.raises(InventoryError, match="not a driver mchub ships; use one of: ble-body-composition"):
            validate_device(_device(kind=kind))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"address": "AA:BB:CC"}, "MAC"),
        ({"transport": "serial", "address": "/etc/../dev/x"}, "device path"),
        ({"transport": "serial", "address": "ttyUSB0"}, "device path"),
        ({"transport": "modbus-rtu", "address": "/dev/ttyS0"}, "unit id"),
        ({"transport": "tcp", "address": "10.0.0.5"}, "port"),
        ({"transport": "tcp", "address": "bad host!", "port": 1}, "host name"),
        ({"transport": "carrier-pigeon"}, "transport"),
        ({"station": 0}, "station"),
        ({"station": 100}, "station"),
        ({"kind": "BLE BP"}, "kind"),
        ({"device_id": "has space"}, "device id"),
        ({"options": {"bad key": 1}}, "option"),
        ({"dialect": "x" * 65}, "dialect"),
    ],
)
def test_invalid_devices_are_refused_with_the_reason(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        validate_device(_device(**changes))


async def test_device_add_bumps_the_version_and_reaches_the_hub(cloud: Cloud) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    token = await cloud.token()
    response = await cloud.enroll(key, token)
    hub_id = response.hub_id
    running = accept_response(response, key, token, now_ms=NOW).config
    assert running.version == 0

    bp, v1 = await admin.add_device(cloud.stores, actor="alice", now_ms=NOW, hub_id=hub_id, station=1,
                                    kind="ble-bp", address="AA:BB:CC:DD:EE:01", label="诊室1 血压计")
    scale, v2 = await admin.add_device(cloud.stores, actor="alice", now_ms=NOW, hub_id=hub_id, station=2,
                                       kind="serial-station", address="/dev/ttyUSB0", options={"baud": 9600},
                                       dialect="dhm-200")
    bp2, _ = await admin.add_device(cloud.stores, actor="alice", now_ms=NOW, hub_id=hub_id, station=1,
                                    kind="ble-bp", address="AA:BB:CC:DD:EE:02")
    assert (bp.device_id, scale.device_id, bp2.device_id) == ("s1-ble-bp", "s2-serial-station", "s1-ble-bp-2")
    assert (v1, v2) == (1, 2) and scale.transport == "serial"
    with pytest.raises(InventoryError, match="already has s1-ble-bp"):
        await admin.add_device(cloud.stores, actor="alice", now_ms=NOW, hub_id=hub_id, station=3,
                               kind="ble-bp", address="aa:bb:cc:dd:ee:01")
    with pytest.raises(InventoryError, match="--transport"):
        await admin.add_device(cloud.stores, actor="alice", now_ms=NOW, hub_id=hub_id, station=3,
                               kind="weird", address="x")

    hub = await cloud.stores.hubs.get(hub_id)
    assert hub is not None
    cloud.stores.devices.names[(hub_id, 1)] = "一诊室"  # named on the cloud's devices page
    signed = await cloud.authority.config_for(cloud.stores, hub, now_ms=NOW)  # what apply-config carries
    incoming = verify_config(signed, cloud.signing_key.public_key(), hub_id)
    assert incoming.version == 3 and [(s.station, s.name) for s in incoming.stations] == [(1, "一诊室"), (2, "")]
    assert should_apply(running, incoming)
    diff = diff_devices(running, incoming)
    assert [d.id for d in diff.start] == ["s1-ble-bp", "s1-ble-bp-2", "s2-serial-station"] and not diff.stop

    await admin.remove_device(cloud.stores, actor="alice", now_ms=NOW, hub_id=hub_id, device_id="s1-ble-bp-2")
    newer = verify_config(await cloud.authority.config_for(cloud.stores, hub, now_ms=NOW),
                          cloud.signing_key.public_key(), hub_id)
    diff = diff_devices(incoming, newer)
    assert diff.stop == ("s1-ble-bp-2",) and not diff.start and not diff.restart
    assert not should_apply(newer, newer)  # re-delivered: no-op
    assert cloud.audit.actions()[-4:] == ["device.add", "device.add", "device.add", "device.remove"]


async def test_devices_only_on_active_hubs(cloud: Cloud) -> None:
    with pytest.raises(NotFound):
        await admin.add_device(cloud.stores, actor="a", now_ms=NOW, hub_id="nope", station=1, kind="ble-bp",
                               address="AA:BB:CC:DD:EE:01")
    response = await cloud.enroll(ed25519.Ed25519PrivateKey.generate(), await cloud.token())
    await revoke_hub(cloud.stores, response.hub_id, actor="a", reason="r", now_ms=NOW)
    with pytest.raises(HubRevoked):
        await admin.add_device(cloud.stores, actor="a", now_ms=NOW, hub_id=response.hub_id, station=1,
                               kind="ble-bp", address="AA:BB:CC:DD:EE:01")


def test_changed_settings_restart_only_that_device() -> None:
    a, b = _device(), _device(device_id="s2-ble-bp", station=2, address="AA:BB:CC:DD:EE:02")
    old = render_config(hub_id="h", site_id="s", site_name="n", version=1, devices=[a, b], now_ms=NOW)
    new = render_config(hub_id="h", site_id="s", site_name="n", version=2, now_ms=NOW,
                        devices=[a, msgspec.structs.replace(b, options={"interval_s": 5})])
    diff = diff_devices(old, new)
    assert [d.id for d in diff.restart] == ["s2-ble-bp"] and not diff.start and not diff.stop
    assert diff_devices(old, old).empty


def test_config_signature_addressee_and_format_are_checked() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    config = render_config(hub_id="h", site_id="s", site_name="n", version=1, devices=[_device()], now_ms=NOW)
    signed = sign_config(config, key)
    assert verify_config(signed, key.public_key(), "h") == config
    with pytest.raises(ConfigDocumentError, match="signature"):
        verify_config(signed, ed25519.Ed25519PrivateKey.generate().public_key(), "h")
    with pytest.raises(ConfigDocumentError, match="not this hub"):
        verify_config(signed, key.public_key(), "other")
    future = sign_config(msgspec.structs.replace(config, format=2), key)
    with pytest.raises(ConfigDocumentError, match="upgrade"):
        verify_config(future, key.public_key(), "h")
    import base64

    junk = base64.b64encode(b"{not json").decode()
    with pytest.raises(ConfigDocumentError):
        verify_config(type(signed)(junk, base64.b64encode(key.sign(b"{not json")).decode()), key.public_key(), "h")
    assert isinstance(msgspec.json.decode(msgspec.json.encode(config), type=HubConfig), HubConfig)


def test_config_travels_in_a_signed_apply_config_command() -> None:
    from protocol.commands import verify_command
    from provisioning.inventory import config_command, config_from_command

    cloud = ed25519.Ed25519PrivateKey.generate()
    config = render_config(hub_id="h", site_id="s", site_name="n", version=4, devices=[_device()], now_ms=NOW)
    wire = config_command(sign_config(config, cloud), cloud, hub_id="h", now_ms=NOW)
    command = verify_command(wire, cloud.public_key(), "h", NOW + 1000)  # what the hub's command channel does
    assert command.name == "apply-config"
    assert verify_config(config_from_command(command), cloud.public_key(), "h") == config
    with pytest.raises(ConfigDocumentError):
        config_from_command(msgspec.structs.replace(command, args={}))
