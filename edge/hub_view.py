"""What the hub's web layer may see and do of the running hub: a narrow view, not the whole ``Hub``.

The status page, the kiosk, staff sign-in and the JSON API (``edge/web/``, ``edge/status.py``)
are typed against :class:`HubView`, which :class:`edge.daemon.Hub` satisfies. So they do not
import the daemon (which imports them to serve them: no import circle), and they cannot reach
into the hub's parts (the writer's disk guard, the sync client's settings): what they show
comes from a figure the hub hands out (:class:`StoreHealth`, :class:`SyncView`), what they do
goes through one of the hub's actions (identify, bind, close a session, audit ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from drivers.base import Measurement
from edge.config import HubConfig
from edge.store.reader import Reader
from edge.store.schema import Quarantine
from edge.supervisor import DeviceHealth
from protocol.flags import BpThresholds
from protocol.model import Subject


@dataclass(frozen=True)
class StoreHealth:
    """hub.db's writer, as the status page and API show it."""

    held_for_disk: bool  #: new inputs are held because the disk is nearly full
    disk_low: bool  #: the disk is below ``[storage] min_free_mb``: new readings wait
    disk_free_bytes: int
    last_error: str | None
    commits: int


class SyncView(Protocol):
    """The sync client's state, read only (``edge.sync.SyncClient``)."""

    @property
    def state(self) -> str: ...
    @property
    def last_success_ms(self) -> int | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def batch_max(self) -> int: ...


class HubView(Protocol):
    """The running hub as its web pages and API see it."""

    #: the kiosk and staff sign-in of the web server, once it runs (set by :func:`edge.web.app.build_app`)
    kiosk: Any
    staff_login: Any

    @property
    def cfg(self) -> HubConfig: ...
    @property
    def reader(self) -> Reader: ...
    @property
    def sync(self) -> SyncView | None: ...
    @property
    def quarantine(self) -> Quarantine | None: ...
    @property
    def version(self) -> str: ...
    @property
    def bp_thresholds(self) -> BpThresholds: ...
    @property
    def live_listeners(self) -> list[Callable[[str, Measurement], None]]: ...
    @property
    def commit_listeners(self) -> list[Callable[[], None]]: ...

    def config_status(self) -> dict[str, Any]: ...
    def device_health(self) -> list[DeviceHealth]: ...
    def store_health(self) -> StoreHealth: ...
    def broker_connected(self) -> bool | None: ...
    async def audit(self, kind: str, actor: str, detail: str) -> None: ...
    async def identify(self, station_id: str, subject: Subject, pregnant_weeks: int | None = None) -> str: ...
    async def close_session(self, station_id: str, reason: str) -> int: ...
    async def bind(self, reading_uid: str, session_id: str, by: str) -> int: ...
    async def resend_dead_letter(self, seq: int, by: str, drop_codes: tuple[str, ...] = ()) -> int: ...
    async def dismiss_dead_letter(self, seq: int, by: str) -> None: ...
