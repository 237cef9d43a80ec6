"""The ID-card reader driver: find -> select -> read polling over a serial link.

Configuration (``[[stations.devices]]`` in hub.toml, ``driver = "idcard"``):

| key | default | meaning |
|---|---|---|
| ``address`` | required | serial port (``/dev/ttyUSB0``, a by-id path); TCP server host if ``transport = "tcp"`` |
| ``transport``, ``port`` | ``"serial"`` | ``"tcp"`` and the TCP port for a serial-to-Ethernet server |
| ``baudrate`` | 115200 | |
| ``poll_interval`` | 0.3 | seconds between find-card polls |
| ``timeout`` | 1.0 | seconds to wait for an answer (a read answer gets 3x) |
| ``dedupe_seconds`` | 5.0 | reads of the same card within this window are one event |
| ``removal_misses`` | 2 | consecutive "no card" answers that mean the card was taken away |
| ``fingerprint`` | false | read text + photo + fingerprint (``30 10``) instead of ``30 01`` |

A card that stays on the reader is read once: after a successful read the driver only
polls "find" until the card has been absent ``removal_misses`` times. The de-duplication
state lives on the driver object, and the factory hands the same object back for an
unchanged device (:mod:`drivers.instances`), so a supervisor that restarts the driver
after a link failure does not report the same card twice.

Logs never contain the ID number or the name unmasked, nor the photo.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from drivers.base import Sink
from drivers.errors import FrameError
from drivers.idcard import frame, status
from drivers.idcard.card import decode_read_data
from drivers.instances import reuse
from drivers.links import Link, LinkOptions, link_spec, open_link
from drivers.options import device_options
from protocol.idnum import mask

log = logging.getLogger("mchub.drivers.idcard")

#: what a valid answer to each command looks like: (success SW3, data length check)
_EXPECT: dict[tuple[int, int], tuple[int, Callable[[int], bool]]] = {
    frame.SAM_STATUS: (status.SUCCESS, lambda n: n == 0),
    frame.FIND_CARD: (status.CARD_FOUND, lambda n: n == 4),
    frame.SELECT_CARD: (status.SUCCESS, lambda n: n == 8),
    frame.READ_TEXT_PHOTO: (status.SUCCESS, lambda n: n >= 4 + 256),
    frame.READ_ALL: (status.SUCCESS, lambda n: n >= 6 + 256),
}


_SECONDS = Meta(ge=0, le=3600)


class IdCardOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The keys of an ID-card reader's table besides where it is (:func:`~drivers.links.link_spec`)."""

    baudrate: Annotated[int, Meta(ge=1, examples=[115200])] = 115200
    poll_interval: Annotated[float, _SECONDS, Meta(examples=[0.3])] = 0.3  #: seconds between "find card" polls
    timeout: Annotated[float, _SECONDS, Meta(examples=[1.0])] = 1.0  #: seconds for an answer
    #: the same card again within this many seconds is one read
    dedupe_seconds: Annotated[float, _SECONDS, Meta(examples=[5.0])] = 5.0
    #: polls without a card before it counts as removed (0 is taken as 1)
    removal_misses: Annotated[int, Meta(ge=0, le=1000, examples=[2])] = 2
    fingerprint: bool = False  #: read the fingerprint block too


class IdCardReader:
    """Driver for a SAM serial ID-card reader."""

    def __init__(self, device_id: str, config: Mapping[str, Any],
                 clock: Callable[[], float] = time.monotonic,
                 link_factory: Callable[[LinkOptions, int], Awaitable[Link]] = open_link) -> None:
        self.device_id = device_id
        self.link = link_spec(device_id, config)
        o = device_options(device_id, config, IdCardOptions)
        self.baudrate = o.baudrate
        self.poll_interval = o.poll_interval
        self.timeout = o.timeout
        self.idle_flush = min(0.1, self.timeout / 4)
        self.dedupe_seconds = o.dedupe_seconds
        self.removal_misses = max(1, o.removal_misses)
        self.read_command = frame.READ_ALL if o.fingerprint else frame.READ_TEXT_PHOTO
        self._clock = clock
        self._link_factory = link_factory
        self._decoder = frame.ResponseDecoder()
        self._pending: deque[frame.Response | FrameError] = deque()
        self._present = False
        self._misses = 0
        self._last: tuple[str, float] | None = None  # (ID number, time of last read)
        self.last_status: status.SamStatusError | None = None  #: most recent error answer

    async def run(self, sink: Sink) -> None:
        """Poll the reader until cancelled; raise TransportError when the link fails."""
        link = await self._link_factory(self.link, self.baudrate)
        self._decoder.reset()
        self._pending.clear()
        sink.state(True, link.description)
        log.info("%s: ID-card reader on %s", self.device_id, link.description)
        try:
            await self.check_sam(link, sink)
            while True:
                await self.poll_once(link, sink)
                await asyncio.sleep(self.poll_interval)
        finally:
            link.close()
            sink.state(False, "ID-card reader link closed")

    async def check_sam(self, link: Link, sink: Sink) -> None:
        """Ask the SAM module for its status once after connecting; show a fault on the status page."""
        answer = await self._transact(link, sink, frame.SAM_STATUS)
        if answer is None:
            sink.state(True, f"{link.description}: the SAM status query went unanswered")
        elif answer.sw3 != status.SUCCESS:
            error = status.error_for(answer.sw3)
            self.last_status = error
            log.warning("%s: SAM module reports: %s", self.device_id, error)
            sink.state(True, f"{link.description}: {error}")

    async def poll_once(self, link: Link, sink: Sink) -> None:
        """One find (and, for a new card, select + read) cycle."""
        found = await self._transact(link, sink, frame.FIND_CARD)
        if found is None:
            return
        if found.sw3 != status.CARD_FOUND:
            self._note_status(found.sw3)
            self._misses += 1
            if self._present and self._misses >= self.removal_misses:
                self._present = False
                log.info("%s: card removed", self.device_id)
            return
        self._misses = 0
        if self._present:
            return  # the card already read is still lying on the reader
        selected = await self._transact(link, sink, frame.SELECT_CARD)
        if selected is None or selected.sw3 != status.SUCCESS:
            if selected is not None:
                self._note_status(selected.sw3)
            return
        answer = await self._transact(link, sink, self.read_command, self.timeout * 3)
        if answer is None or answer.sw3 != status.SUCCESS:
            if answer is not None:
                self._note_status(answer.sw3)
            return
        try:
            card = decode_read_data(answer.data, self.read_command == frame.READ_ALL)
        except FrameError as exc:
            exc.raw = answer.raw[: frame.REDACT_AFTER]  # keep the header only: no card data in errors
            log.warning("%s: card data rejected: %s", self.device_id, exc)
            sink.frame_error(exc)
            self._present = True  # do not re-read a bad card in a loop; wait for removal
            return
        self._present = True
        number = card.subject.national_id or ""
        now = self._clock()
        if self._last is not None and self._last[0] == number and now - self._last[1] < self.dedupe_seconds:
            self._last = (number, now)
            log.info("%s: card %s read again within %.0f s: same event", self.device_id, mask(number),
                     self.dedupe_seconds)
            return
        self._last = (number, now)
        log.info("%s: card read: %s", self.device_id, mask(number))
        await sink.event(card)

    def _note_status(self, sw3: int) -> None:
        if sw3 in (status.SUCCESS, status.CARD_FOUND):
            return
        error = status.error_for(sw3)
        self.last_status = error
        if not isinstance(error, status.FindCardFailed):
            log.info("%s: reader answered: %s", self.device_id, error)

    async def _transact(self, link: Link, sink: Sink, cmd: tuple[int, int],
                        limit: float | None = None) -> frame.Response | None:
        """Send ``cmd`` and wait for a fitting answer; None after a timeout (frame errors reported)."""
        success, size_ok = _EXPECT[cmd]
        await link.write(frame.command(cmd))
        deadline = self._clock() + (limit or self.timeout)
        while True:
            while self._pending:
                item = self._pending.popleft()
                if isinstance(item, FrameError):
                    log.warning("%s: bad frame from reader: %s", self.device_id, item)
                    sink.frame_error(item)
                elif (item.sw3 in (status.SUCCESS, status.CARD_FOUND)
                      and (item.sw3 != success or not size_ok(len(item.data)))):
                    unexpected = FrameError(f"answer {item!r} does not fit command {cmd[0]:02X} {cmd[1]:02X}",
                                            item.raw[: frame.REDACT_AFTER])
                    sink.frame_error(unexpected)
                else:
                    return item
            left = deadline - self._clock()
            if left <= 0:
                break
            data = await link.read(min(self.idle_flush, left))
            self._pending.extend(self._decoder.feed(data) if data else self._decoder.flush())
        log.warning("%s: no answer to command %02X %02X within the timeout", self.device_id, *cmd)
        for item in self._decoder.flush():
            if isinstance(item, FrameError):
                sink.frame_error(item)
        return None


def make_reader(device_id: str, config: Mapping[str, Any]) -> IdCardReader:
    """Driver factory for ``driver = "idcard"`` (the same object again for an unchanged device)."""
    return reuse("idcard", device_id, config, lambda: IdCardReader(device_id, config))
