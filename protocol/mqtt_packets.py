"""MQTT 3.1.1 control packets, as the hub's client needs them: a pure codec over bytes.

The hub speaks MQTT as a client only, in two places: the command channel
(``edge/commands.py``: status with a last will, telemetry, signed commands) and the MQTT
device driver (``drivers/mqtt``: QoS 1 in a persistent session, acknowledged after the
reading is stored). Both need the same small part of the protocol (OASIS MQTT Version
3.1.1, 2014; section numbers below): CONNECT/CONNACK, PUBLISH with QoS 0 and 1 both ways,
PUBACK, SUBSCRIBE/SUBACK, PINGREQ/PINGRESP and DISCONNECT. QoS 2 is never subscribed to,
so a broker never sends it (3.8.4: it downgrades to the subscription's QoS); one that does is
a protocol error.

Own code instead of paho-mqtt (with aiomqtt over it): paho's client module and the
``urllib.request``, ``http.client`` and ``email`` packages it imports kept 2.8 MB of a hub's
resident memory for good (issue 21; the hub must stay under 60 MB on a Raspberry Pi).

:class:`PacketReader` takes bytes as they arrive from the socket and yields whole packets.
It checks every length before it reads and refuses a packet larger than its limit before
buffering it; any error is a :class:`MqttPacketError` and ends the connection (a stream
that has lost its framing cannot be resynchronised: MQTT has no frame markers).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocol.errors import ProtocolError

MAX_REMAINING = 268_435_455  #: 2.2.3: four length bytes at most
DEFAULT_MAX_PACKET = 1 << 20  #: what the hub accepts from a broker; its devices send a few hundred bytes


class MqttPacketError(ProtocolError):
    """A packet that breaks MQTT 3.1.1 (or this client's limits)."""


class PacketType(IntEnum):
    """2.2.1: the high nibble of the first byte."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    SUBSCRIBE = 8
    SUBACK = 9
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


#: 3.2.2.3: why a broker refused a connection
CONNACK_REFUSALS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
SUBACK_FAILURE = 0x80  #: 3.9.3


@dataclass(frozen=True)
class Will:
    """The message the broker publishes when the connection is lost (3.1.2.5)."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True)
class Publish:
    """A PUBLISH packet (3.3). ``packet_id`` is 0 for QoS 0."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int = 0


@dataclass(frozen=True)
class ConnAck:
    session_present: bool
    return_code: int


@dataclass(frozen=True)
class PubAck:
    packet_id: int


@dataclass(frozen=True)
class SubAck:
    packet_id: int
    granted: tuple[int, ...]  #: a QoS per filter, or :data:`SUBACK_FAILURE`


@dataclass(frozen=True)
class PingResp:
    pass


Packet = ConnAck | PubAck | SubAck | PingResp | Publish


# -- encoding -------------------------------------------------------------------------------------

def _string(text: str) -> bytes:
    return _blob(text.encode("utf-8"))


def _blob(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise MqttPacketError(f"a field of {len(data)} bytes is longer than MQTT allows (65,535)")
    return len(data).to_bytes(2, "big") + data


def _packet_id(packet_id: int) -> bytes:
    if not 1 <= packet_id <= 0xFFFF:
        raise MqttPacketError(f"packet id {packet_id} is outside 1..65535")
    return packet_id.to_bytes(2, "big")


def remaining_length(n: int) -> bytes:
    """2.2.3: the variable-length encoding of the bytes after the fixed header."""
    if not 0 <= n <= MAX_REMAINING:
        raise MqttPacketError(f"a packet of {n} bytes is longer than MQTT allows")
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + remaining_length(len(body)) + body


def _check_qos(qos: int) -> None:
    if qos not in (0, 1):
        raise MqttPacketError(f"QoS {qos} is not supported (0 or 1)")


def encode_connect(client_id: str, *, keepalive: int, clean_session: bool = True, username: str | None = None,
                   password: str | None = None, will: Will | None = None) -> bytes:
    """3.1: CONNECT, protocol level 4."""
    if not 0 <= keepalive <= 0xFFFF:
        raise MqttPacketError(f"keepalive {keepalive} s is outside 0..65535")
    if password is not None and username is None:
        raise MqttPacketError("MQTT 3.1.1 sends a password only with a user name (3.1.2.9)")
    flags = 0x02 if clean_session else 0
    payload = _string(client_id)
    if will is not None:
        _check_qos(will.qos)
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += _string(will.topic) + _blob(will.payload)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
    if password is not None:
        flags |= 0x40
        payload += _blob(password.encode("utf-8"))
    header = _string("MQTT") + bytes((4, flags)) + keepalive.to_bytes(2, "big")
    return _packet(PacketType.CONNECT << 4, header + payload)


def encode_publish(p: Publish) -> bytes:
    """3.3: PUBLISH (QoS 0 or 1)."""
    _check_qos(p.qos)
    if not p.topic or "+" in p.topic or "#" in p.topic:
        raise MqttPacketError(f"cannot publish to {p.topic!r}: a topic name has no wildcards and is not empty")
    first = (PacketType.PUBLISH << 4) | (0x08 if p.dup else 0) | (p.qos << 1) | (0x01 if p.retain else 0)
    body = _string(p.topic) + (_packet_id(p.packet_id) if p.qos else b"") + p.payload
    return _packet(first, body)


def encode_puback(packet_id: int) -> bytes:
    """3.4: PUBACK."""
    return _packet(PacketType.PUBACK << 4, _packet_id(packet_id))


def encode_subscribe(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    """3.8: SUBSCRIBE (the fixed header's flags are 0010)."""
    if not filters:
        raise MqttPacketError("SUBSCRIBE needs at least one topic filter")
    body = _packet_id(packet_id)
    for topic_filter, qos in filters:
        _check_qos(qos)
        body += _string(topic_filter) + bytes((qos,))
    return _packet((PacketType.SUBSCRIBE << 4) | 0x02, body)


PINGREQ = bytes((PacketType.PINGREQ << 4, 0))  #: 3.12
DISCONNECT = bytes((PacketType.DISCONNECT << 4, 0))  #: 3.14


# -- decoding -------------------------------------------------------------------------------------

def _read_string(body: bytes, at: int) -> tuple[str, int]:
    if at + 2 > len(body):
        raise MqttPacketError("a string's length runs past the end of the packet")
    n = int.from_bytes(body[at:at + 2], "big")
    if at + 2 + n > len(body):
        raise MqttPacketError(f"a string of {n} bytes runs past the end of the packet")
    try:
        return body[at + 2:at + 2 + n].decode("utf-8"), at + 2 + n
    except UnicodeDecodeError as exc:
        raise MqttPacketError(f"a string is not UTF-8: {exc}") from None


def _id_only(kind: str, body: bytes) -> int:
    if len(body) != 2:
        raise MqttPacketError(f"{kind} must be 2 bytes long, not {len(body)}")
    packet_id = int.from_bytes(body, "big")
    if packet_id == 0:
        raise MqttPacketError(f"{kind} names packet id 0")
    return packet_id


def decode_packet(first: int, body: bytes) -> Packet:
    """One packet a broker sends to a client, from its first byte and the bytes after its length."""
    kind, flags = first >> 4, first & 0x0F
    if kind == PacketType.PUBLISH:
        qos = (flags >> 1) & 0x03
        if qos not in (0, 1):
            raise MqttPacketError(f"PUBLISH with QoS {qos}: this client subscribes with QoS 1 at most")
        topic, at = _read_string(body, 0)
        if not topic or "+" in topic or "#" in topic:
            raise MqttPacketError(f"PUBLISH to {topic!r}: not a topic name")
        packet_id = 0
        if qos:
            packet_id = _id_only("PUBLISH's packet id", body[at:at + 2])
            at += 2
        return Publish(topic, bytes(body[at:]), qos, bool(flags & 0x01), bool(flags & 0x08), packet_id)
    if kind == PacketType.CONNACK:
        if flags or len(body) != 2 or body[0] & 0xFE:
            raise MqttPacketError(f"malformed CONNACK {bytes((first,)) + body!r}")
        return ConnAck(bool(body[0] & 0x01), body[1])
    if kind == PacketType.PUBACK:
        if flags:
            raise MqttPacketError("PUBACK with flags set")
        return PubAck(_id_only("PUBACK", body))
    if kind == PacketType.SUBACK:
        if flags or len(body) < 3:
            raise MqttPacketError(f"malformed SUBACK {bytes((first,)) + body!r}")
        granted = tuple(body[2:])
        if any(g not in (0, 1, 2, SUBACK_FAILURE) for g in granted):
            raise MqttPacketError(f"SUBACK with return codes {granted}")
        return SubAck(_id_only("SUBACK", body[:2]), granted)
    if kind == PacketType.PINGRESP:
        if flags or body:
            raise MqttPacketError("malformed PINGRESP")
        return PingResp()
    raise MqttPacketError(f"a broker does not send packet type {kind} to a client")


class PacketReader:
    """Whole packets out of a byte stream, with every length checked before it is read."""

    def __init__(self, max_packet: int = DEFAULT_MAX_PACKET) -> None:
        self.max_packet = max_packet
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        """Add bytes from the socket; return the packets now complete (raises :class:`MqttPacketError`)."""
        self._buf += data
        out: list[Packet] = []
        while len(self._buf) >= 2:
            length, multiplier, at = 0, 1, 1
            while True:
                if at >= len(self._buf):
                    return out  # the length itself is still arriving
                digit = self._buf[at]
                length += (digit & 0x7F) * multiplier
                at += 1
                if not digit & 0x80:
                    break
                multiplier *= 128
                if at > 4:
                    raise MqttPacketError("remaining length longer than four bytes")
            if length > self.max_packet:
                raise MqttPacketError(f"a packet of {length} bytes is over this client's limit of {self.max_packet}")
            if len(self._buf) < at + length:
                return out
            first, body = self._buf[0], bytes(self._buf[at:at + length])
            del self._buf[:at + length]
            out.append(decode_packet(first, body))
        return out
