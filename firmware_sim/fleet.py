"""A fleet of virtual hubs that enroll with a cloud and sync realistic traffic over HTTP.

Each :class:`VirtualHub` has its own Ed25519 key and epoch, produces clinic visits (ID
card -> session opened, blood pressure, height/weight, temperature, session closed) as
protocol records, seals them with :func:`protocol.envelope.seal` and POSTs them to
``/api/v1/batches``, following docs/protocol.md §2 exactly: it keeps everything until a
verified ack, resends from the expected seq on 409, waits Retry-After on 503.

Registration uses the cloud's admin HTTP API (``POST /admin/v1/hubs``); this module never
imports ``cloud``.

    mchub sim fleet --url http://127.0.0.1:8443 --admin-token-file admin.token --hubs 100 --interval 10
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol import backoff, idnum
from protocol.ack import AckStatus, verify_ack
from protocol.envelope import seal
from protocol.ids import now_ms, uuid7
from protocol.keys import RecipientPublic, SuiteId, ed25519_raw, load_ed25519_public
from protocol.model import Observation, Reading, Record, SessionClosed, SessionOpened, Subject

BATCH_TYPE = "application/vnd.mchub.batch"
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "芳娜敏静丽艳娟霞秀英华玲桂兰"


def random_national_id(rng: random.Random) -> str:
    """A valid (synthetic) resident ID number of a woman aged 18-60."""
    birth = f"{rng.randint(1965, 2006)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    first17 = f"{rng.choice(['110105', '310104', '440305', '510107'])}{birth}{rng.randint(0, 99):02d}" \
              f"{rng.choice('02468')}"
    return first17 + idnum.check_character(first17)


@dataclass
class CloudKeys:
    """The cloud's public keys as served at GET /api/v1/keys."""

    recipient: RecipientPublic
    signing: ed25519.Ed25519PublicKey

    @classmethod
    def from_document(cls, doc: dict[str, object], suite: SuiteId = SuiteId.X25519_AES256GCM) -> CloudKeys:
        """Parse the keys document."""
        rec = doc["recipients"][suite.label]  # type: ignore[index]
        return cls(RecipientPublic(suite, bytes.fromhex(rec["public_key"])),
                   load_ed25519_public(bytes.fromhex(str(doc["signing_public_key"]))))


@dataclass
class SyncStats:
    """What a hub (or the fleet) saw."""

    batches: int = 0
    records: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    #: per batch, from its first try to its answer: Retry-After waits and reconnects included, as a hub sees it
    latencies_ms: list[float] = field(default_factory=list)


class VirtualHub:
    """One simulated hub: a record stream, a key, and the sync client loop."""

    def __init__(self, hub_id: str, cloud: CloudKeys, rng: random.Random | None = None) -> None:
        self.hub_id = hub_id
        self.cloud = cloud
        self.rng = rng or random.Random()
        self.key = ed25519.Ed25519PrivateKey.generate()
        self.epoch = self.rng.getrandbits(64) or 1
        self.next_seq = 1
        self.acked = 0
        self.pending: list[Record] = []
        self.stats = SyncStats()

    @property
    def public_key_hex(self) -> str:
        """Raw Ed25519 public key, hex (for registration)."""
        return ed25519_raw(self.key.public_key()).hex()

    def _seq(self) -> int:
        self.next_seq += 1
        return self.next_seq - 1

    def _reading(self, at: int, station: str, device: str, kind: str, session: str | None,
                 obs: list[tuple[str, float, str]]) -> Reading:
        return Reading(hub_id=self.hub_id, epoch=self.epoch, seq=self._seq(), at=at, device_id=device,
                       station_id=station, kind=kind,  # type: ignore[arg-type]
                       observations=tuple(Observation(code=c, value=v, unit=u) for c, v, u in obs),
                       session_id=session, raw=self.rng.randbytes(24))

    def add_visit(self, at: int | None = None, national_id: str | None = None) -> list[Record]:
        """Queue one patient visit (6 records) and return them."""
        r, at = self.rng, at or now_ms()
        station, session = f"ST{r.randint(1, 3)}", uuid7(at)
        subject = Subject(national_id=national_id or random_national_id(r),
                          name=r.choice(_SURNAMES) + r.choice(_GIVEN) * r.randint(1, 2), sex="2")
        recs: list[Record] = [SessionOpened(hub_id=self.hub_id, epoch=self.epoch, seq=self._seq(), at=at,
                                            session_id=session, station_id=station, subject=subject)]
        sys_, dia = r.randint(100, 150), r.randint(60, 95)
        recs.append(self._reading(at + 40_000, station, f"{station}-bp", "blood_pressure", session,
                                  [("8480-6", sys_, "mm[Hg]"), ("8462-4", dia, "mm[Hg]"),
                                   ("8867-4", r.randint(55, 100), "/min")]))
        h, w = round(r.uniform(148, 175), 1), round(r.uniform(42, 85), 2)
        recs.append(self._reading(at + 70_000, station, f"{station}-hw", "height_weight", session,
                                  [("8302-2", h, "cm"), ("29463-7", w, "kg"),
                                   ("39156-5", round(w / (h / 100) ** 2, 1), "kg/m2")]))
        recs.append(self._reading(at + 90_000, station, f"{station}-t", "temperature", session,
                                  [("8310-5", round(r.uniform(36.0, 37.4), 1), "Cel")]))
        recs.append(self._reading(at + 95_000, station, f"{station}-hw", "weight", None,
                                  [("29463-7", round(r.uniform(3, 20), 2), "kg")]))  # a child, unbound
        recs.append(SessionClosed(hub_id=self.hub_id, epoch=self.epoch, seq=self._seq(), at=at + 120_000,
                                  session_id=session, reason="finished"))
        self.pending.extend(recs)
        return recs

    def seal_from(self, first_seq: int, limit: int = 5000) -> bytes | None:
        """Seal pending records from ``first_seq`` (None when nothing is pending)."""
        recs = [x for x in self.pending if x.seq >= first_seq][:limit]
        if not recs:
            return None
        return seal(recs, hub_id=self.hub_id, epoch=self.epoch, signer=self.key, recipient=self.cloud.recipient)

    async def sync(self, http: aiohttp.ClientSession, url: str, limit: int = 5000) -> int:
        """Upload until everything pending is acknowledged; returns the last HTTP status."""
        status = 200
        started: float | None = None  #: when this batch was first tried: a sample includes every wait until its answer
        while (batch := self.seal_from(self.acked + 1, limit)) is not None:
            started = started or time.perf_counter()
            try:
                async with http.post(f"{url}/api/v1/batches", data=batch,
                                     headers={"Content-Type": BATCH_TYPE}) as resp:
                    body, status = await resp.read(), resp.status
                    retry = float(resp.headers.get("Retry-After", "1"))
            except (aiohttp.ClientError, TimeoutError):  # e.g. a pooled connection the server just closed:
                self.stats.statuses[0] = self.stats.statuses.get(0, 0) + 1  # a real hub retries, so do we
                await asyncio.sleep(self.rng.uniform(0.2, 1.0))
                continue
            self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
            if status != 503:  # 503: the Retry-After wait below belongs to this batch's sample
                self.stats.latencies_ms.append((time.perf_counter() - started) * 1000)
                started = None
            if status in (200, 409):
                ack = verify_ack(body, self.cloud.signing, batch)
                if status == 200:
                    self.stats.batches += 1
                    self.stats.records += max(0, ack.acked_through_seq - self.acked)
                self.acked = max(self.acked, ack.acked_through_seq)
                self.pending = [x for x in self.pending if x.seq > self.acked]
                if ack.status is AckStatus.GAP:
                    continue
            elif status == 503:
                await asyncio.sleep(backoff.not_before(retry, rng=self.rng))
            else:
                return status  # 4xx: keep the data, report
        return status


async def fetch_keys(http: aiohttp.ClientSession, url: str, suite: SuiteId = SuiteId.X25519_AES256GCM) -> CloudKeys:
    """GET /api/v1/keys."""
    async with http.get(f"{url}/api/v1/keys") as resp:
        resp.raise_for_status()
        return CloudKeys.from_document(await resp.json(), suite)


async def enroll(http: aiohttp.ClientSession, url: str, token: str, hubs: list[VirtualHub],
                 site_id: str = "fleet") -> None:
    """Register the hubs through the admin API (in chunks)."""
    auth = {"Authorization": f"Bearer {token}"}
    async with http.post(f"{url}/admin/v1/sites", json={"site_id": site_id, "name": "fleet simulator"},
                         headers=auth) as resp:
        resp.raise_for_status()
    for i in range(0, len(hubs), 200):
        chunk = [{"hub_id": h.hub_id, "site_id": site_id, "public_key": h.public_key_hex} for h in hubs[i:i + 200]]
        async with http.post(f"{url}/admin/v1/hubs", json={"hubs": chunk}, headers=auth) as resp:
            resp.raise_for_status()


@dataclass
class FleetReport:
    """Totals and ack latency percentiles of a fleet run."""

    hubs: int
    batches: int
    records: int
    statuses: dict[int, int]
    p50_ms: float
    p99_ms: float
    seconds: float


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def make_fleet(cloud: CloudKeys, hubs: int, prefix: str = "SIM", seed: int | None = None) -> list[VirtualHub]:
    """``hubs`` virtual hubs named ``{prefix}00000``..., each with its own key and epoch."""
    rng = random.Random(seed)
    return [VirtualHub(f"{prefix}{i:05d}", cloud, random.Random(rng.getrandbits(32))) for i in range(hubs)]


async def drive(http: aiohttp.ClientSession, urls: list[str], fleet: list[VirtualHub], *, interval_s: float,
                duration_s: float, visits: int = 1) -> FleetReport:
    """Every hub adds ``visits`` visits and syncs every ``interval_s`` (spread over the interval)."""
    started = time.monotonic()

    async def one(i: int, hub: VirtualHub) -> None:
        await asyncio.sleep(interval_s * i / max(1, len(fleet)))
        while time.monotonic() - started < duration_s:
            tick = time.monotonic()
            for _ in range(visits):
                hub.add_visit()
            await hub.sync(http, urls[i % len(urls)])
            rest = min(interval_s - (time.monotonic() - tick), duration_s - (time.monotonic() - started))
            await asyncio.sleep(max(0.0, rest))

    await asyncio.gather(*(one(i, h) for i, h in enumerate(fleet)))
    lat = [x for h in fleet for x in h.stats.latencies_ms]
    statuses: dict[int, int] = {}
    for h in fleet:
        for k, v in h.stats.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    return FleetReport(len(fleet), sum(h.stats.batches for h in fleet), sum(h.stats.records for h in fleet),
                       statuses, percentile(lat, 0.5), percentile(lat, 0.99), time.monotonic() - started)


def session() -> aiohttp.ClientSession:
    """An HTTP client session sized for a large fleet."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60))


async def run_fleet(url: str | list[str], token: str, *, hubs: int, interval_s: float, duration_s: float,
                    visits: int = 1, prefix: str = "SIM", seed: int | None = None) -> FleetReport:
    """Enroll ``hubs`` virtual hubs and sync every ``interval_s`` for ``duration_s`` (several URLs: round robin)."""
    urls = [url] if isinstance(url, str) else url
    async with session() as http:
        fleet = make_fleet(await fetch_keys(http, urls[0]), hubs, prefix, seed)
        await enroll(http, urls[0], token, fleet)
        return await drive(http, urls, fleet, interval_s=interval_s, duration_s=duration_s, visits=visits)
