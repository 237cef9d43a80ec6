"""Issue 17 finding 10: sign-in locks escalate (15 min doubling up to 24 h) on the hub and the cloud.

The probe counted 480 guesses a day from one address against the hub: its lock stayed 15
minutes however often it was set. One rule (:func:`webui.security.lock_duration`) now serves
the hub's in-memory throttle and the cloud's database throttle.
"""

from __future__ import annotations

from pathlib import Path

from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.web.store import DbLoginThrottle
from protocol.ids import now_ms
from webui.security import LoginThrottle, lock_duration

DAY = 86_400.0


def guesses_in_a_day(throttle: LoginThrottle) -> int:
    """Guess as fast as the locks allow for 24 h from one address (a clock that jumps over each lock)."""
    t, n = 0.0, 0
    while t < DAY:
        wait = throttle.locked("ip:10.0.0.9", now=t)
        if wait:
            t += wait
            continue
        throttle.failure("ip:10.0.0.9", now=t)
        n += 1
        t += 1.0
    return n


def test_lock_doubles_up_to_a_day() -> None:
    assert [lock_duration(900, n, DAY) / 60 for n in range(8)] == [15, 30, 60, 120, 240, 480, 960, 1440]
    assert lock_duration(900, 100, DAY) == DAY


def test_one_address_gets_dozens_of_guesses_a_day_not_480() -> None:
    n = guesses_in_a_day(LoginThrottle())
    assert n <= 40, n  # 5 per lock: 15+30+60+120+240+480 min fit in the first day (measured: 35)
    print(f"guesses in 24 h from one address: {n}")
    flat = LoginThrottle(max_lock_s=900.0)  # what the hub did before: every lock 15 minutes
    assert guesses_in_a_day(flat) >= 450


def test_a_success_or_a_quiet_day_starts_again_at_15_minutes() -> None:
    th = LoginThrottle()
    for t in range(5):
        th.failure("user:nurse", now=float(t))
    for t in range(5):
        th.failure("user:nurse", now=1000.0 + t)
    assert round(th.locked("user:nurse", now=1004.0)) == 1800  # second lock: 30 min
    th.success("user:nurse")
    for t in range(5):
        th.failure("user:nurse", now=5000.0 + t)
    assert round(th.locked("user:nurse", now=5004.0)) == 900
    for t in range(5):  # the last lock ended more than a day ago: back to 15 min
        th.failure("user:nurse", now=5004.0 + 900 + DAY + 1 + t)
    assert round(th.locked("user:nurse", now=5004.0 + 900 + DAY + 5)) == 900


def test_made_up_user_names_cannot_grow_the_throttle_without_bound() -> None:
    th = LoginThrottle(max_keys=100)
    for i in range(5000):
        th.failure(f"user:x{i}", now=float(i))
    assert len(th.failures) + len(th.locked_until) <= 101


async def test_the_cloud_database_throttle_escalates_the_same_way(tmp_path: Path) -> None:
    db = await Database.connect(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        await migrate(db)
        th = DbLoginThrottle(max_failures=5, lock_s=900)
        th.bind(db)
        for expected_min in (15, 30, 60):
            for _ in range(5):
                await th.failure("ip:10.0.0.9")
            wait = await th.locked("ip:10.0.0.9")
            assert abs(wait - expected_min * 60) < 5, (expected_min, wait)
            async with db.transaction() as tx:  # the lock ran out (the clock is the database's: move the lock)
                await tx.execute("UPDATE web_login_locks SET until_ms = $1", now_ms() - 1)
        await th.success("ip:10.0.0.9")  # a success forgets the ended lock
        for _ in range(5):
            await th.failure("ip:10.0.0.9")
        assert abs(await th.locked("ip:10.0.0.9") - 900) < 5
    finally:
        await db.close()
