"""A city MCH platform simulator: the peer our uploader talks to.

It behaves like a strict real platform, driven by a profile file (the platform's field
names, required fields and code dictionaries — ``cloud/mch/profiles/reference.toml``):

* ``POST /api/v1/cases/{type}`` with a signed JSON body (app key, timestamp, nonce,
  HMAC-SHA256 or HMAC-SM3 over ``METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nsha256(body)``, checked
  here with its own code). Answers:
  200 ``{"status": "accepted"|"duplicate"}``, 401 bad signature / replayed nonce,
  409 an older version than one already accepted, 422 field errors
  ``{"errors": [{"field", "message"}]}``, 429 rate limited (``Retry-After``), and — with
  the configured probabilities — 503 or a response slower than the client's timeout.
* ``GET /api/v1/_accepted``: what it accepted (for tests and the demo's reconciliation);
  ``GET /api/v1/_log``: every accepted (type, caseNo, version) in order, and how many
  resends it answered "duplicate" (an exactly-once check from outside the process).

Idempotence: ``(type, caseNo, recordVersion)`` is accepted once; a resend is a duplicate.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

REFERENCE_PROFILE = Path(__file__).resolve().parent.parent / "cloud" / "mch" / "profiles" / "reference.toml"


@dataclass
class Faults:
    """Seeded misbehaviour: probabilities per request."""

    error_rate: float = 0.0  #: answer 503
    slow_rate: float = 0.0  #: sleep ``slow_seconds`` before answering
    slow_seconds: float = 5.0
    seed: int = 1


@dataclass
class PlatformState:
    """Everything the simulator remembers."""

    accepted: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  #: (type, caseNo) -> record
    log: list[tuple[str, str, int]] = field(default_factory=list)  #: every (type, caseNo, version) accepted, in order
    duplicates: int = 0
    nonces: set[str] = field(default_factory=set)
    requests: int = 0
    rejected: int = 0
    bucket: float = 0.0
    bucket_at: float = 0.0


def _mac(secret: bytes, message: bytes, method: str) -> str:
    if method == "HMAC-SM3":
        h = crypto_hmac.HMAC(secret, hashes.SM3())
        h.update(message)
        return h.finalize().hex()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


class Platform:
    """The simulator; ``app`` is its ASGI application."""

    def __init__(self, *, app_key: str = "mchub", secret: bytes = b"platform-secret",
                 profile: Path = REFERENCE_PROFILE, rate_per_s: float = 50.0, faults: Faults | None = None) -> None:
        spec = tomllib.loads(profile.read_text(encoding="utf-8"))
        self.app_key, self.secret, self.rate = app_key, secret, rate_per_s
        self.faults = faults or Faults()
        self.random = random.Random(self.faults.seed)
        self.required = {kind: set(c.get("required", ())) for kind, c in spec["cases"].items()}
        self.fields = {kind: dict(c["fields"]) for kind, c in spec["cases"].items()}
        self.codes = {
            self.fields[kind][ours]: set(table.values())
            for kind in self.fields for ours, table in spec.get("codes", {}).items() if ours in self.fields[kind]
        }
        self.state = PlatformState(bucket=rate_per_s, bucket_at=time.monotonic())
        self.app = Starlette(routes=[
            Route("/api/v1/cases/{kind}", self.receive, methods=["POST"]),
            Route("/api/v1/_accepted", self.accepted, methods=["GET"]),
            Route("/api/v1/_log", self.accepted_log, methods=["GET"]),
        ])

    def _rate_limited(self) -> bool:
        now = time.monotonic()
        st = self.state
        st.bucket = min(self.rate, st.bucket + (now - st.bucket_at) * self.rate)
        st.bucket_at = now
        if st.bucket < 1:
            return True
        st.bucket -= 1
        return False

    def _check_signature(self, request: Request, body: bytes) -> str | None:
        h = request.headers
        try:
            ts, nonce, sig = int(h["x-timestamp"]), h["x-nonce"], h["x-signature"]
        except (KeyError, ValueError):
            return "missing signature headers"
        if h.get("x-app-key") != self.app_key:
            return "unknown app key"
        if abs(time.time() * 1000 - ts) > 300_000:
            return "timestamp outside the 300 s window"
        message = f"POST\n{request.url.path}\n{ts}\n{nonce}\n{hashlib.sha256(body).hexdigest()}".encode()
        if not hmac.compare_digest(_mac(self.secret, message, h.get("x-signature-method", "HMAC-SHA256")), sig):
            return "signature does not match"
        if nonce in self.state.nonces:
            return "nonce already used"
        self.state.nonces.add(nonce)
        return None

    def _validate(self, kind: str, record: dict[str, Any]) -> list[dict[str, str]]:
        errors = [{"field": f, "message": "required"} for f in sorted(self.required[kind] - set(record))]
        known = set(self.fields[kind].values())
        errors += [{"field": f, "message": "unknown field"} for f in sorted(set(record) - known)]
        for f, value in record.items():
            allowed = self.codes.get(f)
            if allowed is not None and value not in allowed:
                errors.append({"field": f, "message": f"code {value!r} not in dictionary"})
        # the platform's own consistency rule: abnormal cytology needs a colposcopy decision
        if kind == "cervical" and record.get("tbsResult") not in (None, "1") and "colposcopyResult" not in record:
            errors.append({"field": "colposcopyResult", "message": "required after abnormal cytology"})
        return errors

    async def receive(self, request: Request) -> JSONResponse:
        """POST /api/v1/cases/{kind}."""
        self.state.requests += 1
        kind = request.path_params["kind"]
        if self.random.random() < self.faults.slow_rate:
            await asyncio.sleep(self.faults.slow_seconds)
        if self.random.random() < self.faults.error_rate:
            return JSONResponse({"code": "UNAVAILABLE", "message": "try later"}, 503)
        if self._rate_limited():
            return JSONResponse({"code": "RATE_LIMITED"}, 429, headers={"Retry-After": "1"})
        try:
            body = await request.body()
        except ClientDisconnect:  # the client went away (killed, timed out): nothing was received
            return JSONResponse({"code": "CLIENT_GONE"}, 400)
        problem = self._check_signature(request, body)
        if problem:
            self.state.rejected += 1
            return JSONResponse({"code": "AUTH", "message": problem}, 401)
        if kind not in self.fields:
            return JSONResponse({"code": "NOT_FOUND", "message": f"unknown case type {kind}"}, 404)
        try:
            record = json.loads(body)
            assert isinstance(record, dict)
        except (ValueError, AssertionError):
            return JSONResponse({"code": "BAD_JSON", "message": "body is not a JSON object"}, 400)
        errors = self._validate(kind, record)
        if errors:
            self.state.rejected += 1
            return JSONResponse({"code": "VALIDATION", "errors": errors}, 422)
        key, version = (kind, str(record.get("caseNo"))), int(record.get("recordVersion", 1))
        previous = self.state.accepted.get(key)
        if previous is not None:
            old = int(previous.get("recordVersion", 1))
            if version == old:
                self.state.duplicates += 1
                return JSONResponse({"status": "duplicate"})
            if version < old:
                return JSONResponse({"code": "STALE_VERSION", "message": f"version {old} already accepted"}, 409)
        self.state.accepted[key] = record
        self.state.log.append((kind, key[1], version))
        return JSONResponse({"status": "accepted"})

    async def accepted_log(self, request: Request) -> JSONResponse:
        """GET /api/v1/_log: every accepted (type, caseNo, version) in order, and the duplicate count."""
        return JSONResponse({"accepted": [list(e) for e in self.state.log], "duplicates": self.state.duplicates})

    async def accepted(self, request: Request) -> JSONResponse:
        """GET /api/v1/_accepted: every accepted record (latest version per case)."""
        return JSONResponse([{"type": k[0], **v} for k, v in sorted(self.state.accepted.items())])
