"""The BLE connection manager: one :class:`BleDriver` per configured device.

One session, repeated for as long as the hub runs::

    scan (service UUID or configured address) -> connect -> subscribe to indications
    (measurement, plus intermediate cuff pressure for blood pressure) -> RACP "report all
    stored records" -> deliver every frame in arrival order -> link drops -> backoff -> again

Guarantees:

* every received frame is decoded and handed to the sink in order: a measurement through
  ``await sink.event`` (returns once durably stored), a bad frame through
  ``sink.frame_error`` with its bytes. Frames received before a drop are still delivered.
* a record the device sends again from its memory (it was delivered live, or in an earlier
  transfer that the link cut short) is delivered once. A time-stamped frame seen before is
  the same record (a device cannot take two readings in the same second); the last
  ``SEEN_LIMIT`` are remembered. A frame without a time stamp is matched, byte for byte
  and as a multiset, against the frames delivered before the transfer started that the
  device may still hold, so two genuinely equal readings taken while the hub was away both
  arrive (best effort: a reading without a time stamp that arrives live *during* a
  transfer cannot be told apart from its stored copy). A successful RACP delete clears it.
* stored records are deleted on the device (``racp_delete``) only after the device has
  finished sending them *and* every one of them was durably accepted by the sink.
  Until then nothing is lost if the hub crashes; a restarted hub receives again the records
  it had not deleted yet, unless the supervisor primes the driver with the raw frames of
  the device's recent readings (:meth:`BleDriver.remember`). A record without a time
  stamp in the first stored-record transfer of a new driver object (the hub restarted:
  the driver remembers nothing yet) is marked ``repeats``, so the hub compares it with the
  last reading it stored from this device (``edge.store.repeats``; time-stamped records
  are recognised by the hub's ``seen`` keys).
* after any drop the manager reconnects with exponential backoff and jitter
  (``backoff_initial`` .. ``backoff_max``); a session that got connected resets it.
  With ``max_attempts`` set, that many consecutive failures raise TransportError.

The bleak client and scanner are injected (:mod:`drivers.ble.transport`), so tests run the
real manager against ``firmware_sim.ble`` peripherals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec

from drivers.base import Sink
from drivers.ble import racp
from drivers.ble.config import BleConfig
from drivers.ble.profiles import RACP, Profile
from drivers.ble.transport import ClientFactory, GattClient, Scanner
from drivers.errors import FrameError, TransportError
from protocol.backoff import Backoff

log = logging.getLogger(__name__)

#: time-stamped frames remembered for duplicate detection. Only a first filter: the hub store recognises
#: every time-stamped record it holds (its ``seen`` table), so a small window keeps the driver's memory flat
#: within minutes instead of creeping up for hours (issue 21)
SEEN_LIMIT = 128
#: at most this many distinct frames without a time stamp are remembered as "possibly still on the device"
ON_DEVICE_LIMIT = 4096

_Item = tuple[str, bytes]  # (source, payload): a characteristic UUID or one of the markers below
_REPORT_START = "racp:report-start"  # queued just before "report stored records" is written
_REPORT_DONE = "racp:report-done"  # payload: the response code (success / no records found)
_DELETED = "racp:deleted"  # "delete stored records" succeeded


class BleDriver:
    """A running connection to one BLE health device (implements ``drivers.base.Driver``)."""

    def __init__(
        self,
        device_id: str,
        profile: Profile,
        config: BleConfig,
        *,
        client_factory: ClientFactory,
        scanner: Scanner,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.device_id = device_id
        self.profile = profile
        self.config = config
        self._factory = client_factory
        self._scanner = scanner
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._decoders = {profile.measurement: profile.decode, **dict(profile.live)}
        self._seen: OrderedDict[bytes, None] = OrderedDict()  # delivered time-stamped frames
        self._on_device: Counter[bytes] = Counter()  # delivered frames without time the device may hold
        self._resendable: Counter[bytes] | None = None  # during a stored-record transfer
        self._deleting: Counter[bytes] = Counter()
        self._subscribed = False
        self._remembers = False  #: a stored-record transfer completed since this object was made
        self.sessions = 0  #: sessions that reached "subscribed" (for status and tests)
        self.duplicates = 0  #: stored records dropped because they had already been delivered

    def remember(self, frames: Iterable[bytes]) -> None:
        """Prime duplicate detection with frames the hub already stored (call before :meth:`run`).

        After a restart, pass the raw frames of this device's recent readings: the device
        may still hold them and will send them again with its stored records.
        """
        for frame in frames:
            self._seen[bytes(frame)] = None
            self._on_device[bytes(frame)] += 1
        while len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)

    async def run(self, sink: Sink) -> None:
        """Connect, deliver, reconnect with backoff; runs until cancelled."""
        backoff = Backoff(self.config.backoff_initial, self.config.backoff_max, rng=self._rng)
        while True:
            self._subscribed = False
            try:
                await self._session(sink)
                reason = "device disconnected"
            except TransportError as exc:
                reason = str(exc)
            sink.state(False, reason)
            if self._subscribed:
                backoff.reset()
            wait = backoff.next()
            if self.config.max_attempts is not None and backoff.failures >= self.config.max_attempts:
                raise TransportError(f"{self.device_id}: giving up after {backoff.failures} failed attempts: "
                                     f"{reason}")
            log.info("%s: %s; reconnecting in %.1f s", self.device_id, reason, wait)
            await self._sleep(wait)

    async def _session(self, sink: Sink) -> None:
        """One connection, from scan to drop; sets ``_subscribed`` once indications are on."""
        device = await self._scanner.find(self.profile.service, self.config.address, self.config.scan_timeout)
        if device is None:
            where = self.config.address or f"any device advertising {self.profile.title}"
            raise TransportError(f"{self.device_id}: {where} not found within {self.config.scan_timeout:g} s")
        lost = asyncio.Event()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()

        def on_disconnect(_client: Any) -> None:
            loop.call_soon_threadsafe(lost.set)

        client = self._factory(device, on_disconnect)
        self._resendable = None
        try:
            await client.connect()
            sink.state(True, f"connected to {device}")
            await self._subscribe(client, queue)
            self._subscribed = True
            self.sessions += 1
            if self.config.racp:
                await self._request_stored(client, queue, sink)
            await self._deliver(client, queue, lost, sink)
        except TransportError:
            # frames that arrived before the drop are delivered before the session ends
            await self._drain(client, queue, sink)
            raise
        finally:
            with contextlib.suppress(TransportError):
                await client.disconnect()

    async def _subscribe(self, client: GattClient, queue: asyncio.Queue[_Item]) -> None:
        def on(uuid: str) -> Callable[[Any, bytearray], None]:
            return lambda _sender, data: queue.put_nowait((uuid, bytes(data)))

        await client.start_notify(self.profile.measurement, on(self.profile.measurement))
        for uuid, _decode in self.profile.live:
            try:
                await client.start_notify(uuid, on(uuid))
            except TransportError as exc:
                if not client.is_connected:
                    raise
                log.info("%s: no live values (%s)", self.device_id, exc)

    async def _request_stored(self, client: GattClient, queue: asyncio.Queue[_Item], sink: Sink) -> None:
        def on_racp(_sender: Any, data: bytearray) -> None:
            try:
                answer = racp.parse_response(bytes(data))
            except FrameError as exc:
                sink.frame_error(exc)
                return
            if not isinstance(answer, racp.ResponseCode):
                return
            if answer.request == racp.REPORT_STORED_RECORDS and answer.ok:
                queue.put_nowait((_REPORT_DONE, bytes([answer.code])))
            elif answer.request == racp.DELETE_STORED_RECORDS and answer.code == racp.SUCCESS:
                queue.put_nowait((_DELETED, b""))
            elif not answer.ok:
                log.warning("%s: RACP op %d failed: %s", self.device_id, answer.request, answer.text)

        try:
            await client.start_notify(RACP, on_racp)
        except TransportError as exc:
            if not client.is_connected:
                raise
            log.info("%s: device has no Record Access Control Point (%s)", self.device_id, exc)
            return
        queue.put_nowait((_REPORT_START, b""))
        await client.write_gatt_char(RACP, racp.report_all(), True)

    async def _deliver(self, client: GattClient, queue: asyncio.Queue[_Item], lost: asyncio.Event,
                       sink: Sink) -> None:
        lost_wait = asyncio.ensure_future(lost.wait())
        try:
            while True:
                if queue.empty():
                    if lost.is_set():
                        return
                    get = asyncio.ensure_future(queue.get())
                    await asyncio.wait({get, lost_wait}, return_when=asyncio.FIRST_COMPLETED)
                    if not get.done():
                        get.cancel()
                        continue
                    item = get.result()
                else:
                    item = queue.get_nowait()
                await self._handle(client, item, sink, connected=not lost.is_set())
        finally:
            lost_wait.cancel()

    async def _drain(self, client: GattClient, queue: asyncio.Queue[_Item], sink: Sink) -> None:
        while not queue.empty():
            await self._handle(client, queue.get_nowait(), sink, connected=False)

    async def _handle(self, client: GattClient, item: _Item, sink: Sink, *, connected: bool) -> None:
        source, data = item
        if source == _REPORT_START:
            self._resendable = Counter(self._on_device)
        elif source == _REPORT_DONE:
            # every record sent before the response has been durably accepted by now
            self._resendable = None
            self._remembers = True
            if data[0] == racp.NO_RECORDS_FOUND:
                self._on_device.clear()
            elif self.config.racp_delete and connected:
                self._deleting = Counter(self._on_device)
                await client.write_gatt_char(RACP, racp.delete_all(), True)
        elif source == _DELETED:
            self._on_device -= self._deleting
            self._deleting = Counter()
        else:
            await self._frame(source, data, sink)

    async def _frame(self, source: str, data: bytes, sink: Sink) -> None:
        try:
            measurement = self._decoders[source](data)
        except FrameError as exc:
            log.warning("%s: rejected frame %s: %s", self.device_id, data.hex(" "), exc)
            sink.frame_error(exc)
            return
        except Exception as exc:  # a decoder bug must not stop the device; the frame is kept
            log.exception("%s: decoder failed on %s", self.device_id, data.hex(" "))
            sink.frame_error(FrameError(f"decoder failed: {exc!r}", data))
            return
        if measurement.live or source != self.profile.measurement:
            await sink.event(measurement)
            return
        stamped = measurement.device_time is not None
        if stamped:
            duplicate = data in self._seen
        else:
            duplicate = self._resendable is not None and self._resendable[data] > 0
            if duplicate and self._resendable is not None:
                self._resendable[data] -= 1
        if duplicate:
            self.duplicates += 1
            log.debug("%s: record %s was already delivered", self.device_id, data.hex(" "))
            return
        if not stamped and self._resendable is not None and not self._remembers:
            measurement = msgspec.structs.replace(measurement, repeats=True)  # maybe stored before a restart
        await sink.event(measurement)
        if stamped:
            self._seen[data] = None
            if len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)
        elif self.config.racp and len(self._on_device) < ON_DEVICE_LIMIT:
            self._on_device[data] += 1
