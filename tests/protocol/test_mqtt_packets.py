"""MQTT 3.1.1 packets: paho-mqtt's bytes, the specification's length table, and what a reader refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.mqtt_packets import (
    ConnAck,
    MqttPacketError,
    PacketReader,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    Will,
    encode_connect,
    encode_puback,
    encode_publish,
    encode_subscribe,
    remaining_length,
)

PAHO = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "mqtt" / "paho_packets.json").read_text())


def test_the_hubs_packets_match_what_paho_sends() -> None:
    will = Will("mchub/hubs/clinic-1/status", b'{"online":false}', qos=1, retain=True)
    assert encode_connect("mchub-hub-clinic-1", keepalive=30, username="clinic-1", password="s3cret",
                          will=will).hex() == PAHO["connect"]
    assert encode_publish(Publish("mchub/hubs/clinic-1/replies", b"ok", qos=1, packet_id=1)).hex() == \
        PAHO["publish_qos1_id1"]
    assert encode_subscribe(2, [("clinic/+/measurement", 1)]).hex() == PAHO["subscribe_id2"]


@pytest.mark.parametrize(("n", "encoded"), [  # MQTT 3.1.1, 2.2.3, Table 2.4
    (0, "00"), (127, "7f"), (128, "8001"), (16_383, "ff7f"), (16_384, "808001"), (2_097_151, "ffff7f"),
    (2_097_152, "80808001"), (268_435_455, "ffffff7f"),
])
def test_remaining_length_as_the_specification_tabulates_it(n: int, encoded: str) -> None:
    assert remaining_length(n).hex() == encoded


def test_a_reader_takes_packets_split_anywhere_and_several_at_once() -> None:
    stream = (bytes.fromhex("20020100")  # CONNACK, session present
              + bytes.fromhex("90030002" "01")  # SUBACK id 2, QoS 1 granted
              + encode_publish(Publish("clinic/bp-3/measurement", b"x" * 300, qos=1, packet_id=7)).replace(
                  b"\x32", b"\x3a", 1)  # the same with DUP set
              + bytes.fromhex("40020007")  # PUBACK id 7
              + bytes.fromhex("d000"))  # PINGRESP
    expected = [ConnAck(True, 0), SubAck(2, (1,)), Publish("clinic/bp-3/measurement", b"x" * 300, 1, False, True, 7),
                PubAck(7), PingResp()]
    assert PacketReader().feed(stream) == expected
    one_by_one = PacketReader()
    got = [p for i in range(len(stream)) for p in one_by_one.feed(stream[i:i + 1])]
    assert got == expected


@given(topic=st.text(st.characters(blacklist_characters="+#\x00", blacklist_categories=("Cs",)), min_size=1,
                     max_size=40),
       payload=st.binary(max_size=400), qos=st.sampled_from([0, 1]), retain=st.booleans(),
       packet_id=st.integers(1, 0xFFFF), cut=st.integers(0, 500))
def test_a_publish_decodes_to_what_was_encoded(topic: str, payload: bytes, qos: int, retain: bool, packet_id: int,
                                               cut: int) -> None:
    sent = Publish(topic, payload, qos, retain, packet_id=packet_id if qos else 0)
    data = encode_publish(sent)
    reader = PacketReader()
    assert reader.feed(data[:cut]) + reader.feed(data[cut:]) == [sent]


@pytest.mark.parametrize(("data", "why"), [
    (bytes.fromhex("30ffffffff01"), "longer than four bytes"),
    (bytes.fromhex("3080808001"), "over this client's limit"),  # 2 MB announced: refused before it arrives
    (bytes.fromhex("340700036162630001") + b"x", "QoS 2"),
    (bytes.fromhex("3005000961626378"), "runs past the end"),
    (bytes.fromhex("30050003ff6162"), "not UTF-8"),
    (bytes.fromhex("30020000"), "not a topic name"),
    (bytes.fromhex("300400022b2b"), "not a topic name"),
    (bytes.fromhex("40020000"), "packet id 0"),
    (bytes.fromhex("4003000100"), "must be 2 bytes"),
    (bytes.fromhex("2003000000"), "malformed CONNACK"),
    (bytes.fromhex("82050001000101"), "does not send packet type 8"),
    (bytes.fromhex("d00100"), "malformed PINGRESP"),
    (bytes.fromhex("9003000103"), "return codes"),
])
def test_a_reader_refuses_what_breaks_the_protocol(data: bytes, why: str) -> None:
    with pytest.raises(MqttPacketError, match=why):
        PacketReader().feed(data)


def test_encoding_refuses_what_the_hub_must_never_send() -> None:
    with pytest.raises(MqttPacketError, match="wildcards"):
        encode_publish(Publish("clinic/+/measurement", b""))
    with pytest.raises(MqttPacketError, match="QoS 2"):
        encode_publish(Publish("a", b"", qos=2, packet_id=1))
    with pytest.raises(MqttPacketError, match=r"outside 1\.\.65535"):
        encode_puback(0)
    with pytest.raises(MqttPacketError, match="only with a user name"):
        encode_connect("c", keepalive=30, password="p")
    with pytest.raises(MqttPacketError, match="keepalive"):
        encode_connect("c", keepalive=70_000)
    with pytest.raises(MqttPacketError, match="65,535"):
        encode_publish(Publish("t" * 70_000, b""))
