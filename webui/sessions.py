"""Server-side sessions: the browser holds only an opaque random id.

A session records the user, role, CSRF token, last activity and the user's session
``version`` at sign-in. It ends on logout, on idle timeout, when the user's version has moved
on (a role change, password reset, disable or logout elsewhere; see
:class:`webui.security.WebSecurity`), or when the store forgets it (a restart of the hub logs staff out, which
is the safe default). The cloud, running several workers, supplies a database-backed
store implementing :class:`SessionStore`.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Protocol

COOKIE = "mchub_session"


@dataclass
class Session:
    """One signed-in user."""

    id: str
    user: str
    role: str
    csrf: str
    created: float
    last_seen: float
    data: dict[str, str] = field(default_factory=dict)
    version: int = 0  #: the user's session version at sign-in; a later version ends this session

    @classmethod
    def new(cls, user: str, role: str, now: float | None = None, version: int = 0) -> Session:
        """A fresh session with random id and CSRF token."""
        t = time.time() if now is None else now
        return cls(secrets.token_urlsafe(32), user, role, secrets.token_urlsafe(32), t, t, version=version)


class SessionStore(Protocol):
    """Where sessions live."""

    async def get(self, session_id: str) -> Session | None:
        """The session, or None."""
        ...

    async def put(self, session: Session) -> None:
        """Create or update."""
        ...

    async def delete(self, session_id: str) -> None:
        """Forget (logout)."""
        ...


class MemorySessionStore:
    """Sessions in memory: right for the hub's single process."""

    def __init__(self, limit: int = 1000) -> None:
        self.sessions: dict[str, Session] = {}
        self.limit = limit

    async def get(self, session_id: str) -> Session | None:
        """The session, or None."""
        return self.sessions.get(session_id)

    async def put(self, session: Session) -> None:
        """Create or update; past ``limit`` the least recently seen anonymous session goes first
        (so a flood of anonymous visits, e.g. to a kiosk, cannot sign staff out)."""
        self.sessions[session.id] = session
        if len(self.sessions) > self.limit:
            anonymous = [s for s in self.sessions.values() if not s.user]
            oldest = min(anonymous or self.sessions.values(), key=lambda s: s.last_seen)
            del self.sessions[oldest.id]

    async def delete(self, session_id: str) -> None:
        """Forget (logout)."""
        self.sessions.pop(session_id, None)
