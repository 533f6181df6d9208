"""Bearer-key authentication with a per-process cache of key lookups.

A lookup (valid keys only) is cached for ``BACKPROP_KEY_CACHE_SECONDS``, so a revoked key
stops working in every API process within that bound; 0 looks every request up. While
the database is unreachable, a lookup that expired less than
``BACKPROP_DB_OUTAGE_GRACE_SECONDS`` ago still answers (predict keeps serving through a
database restart). Requests
that miss the same key at once (the entry expired under load) share one database read.
``last_used_at`` is written at most once a minute per key and process, by a conditional
UPDATE that leaves it alone when another process wrote it within the minute; a database
that cannot take that write fails no request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from datetime import timedelta
from functools import partial
from typing import Any

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import or_, update
from starlette.requests import HTTPConnection

from app.api.singleflight import SingleFlight
from app.services.errors import ServiceError
from app.services.keys import Caller, authenticate, hash_key, looks_like_key
from app.storage.database import UNAVAILABLE, Database, brief
from app.storage.tables import ApiKey, utcnow

log = logging.getLogger("backprop.api")

LAST_USED_INTERVAL_SECONDS = 60.0
MAX_CACHED_KEYS = 10_000

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key, sent as `Authorization: Bearer bp_...` "
    "(create one with `backprop keys create NAME`).",
)

# The OpenAPI security requirement of an operation that checks the key itself
# (``openapi_extra={"security": SECURITY}``) instead of through ``require_caller``.
SECURITY: list[dict[str, list[Any]]] = [{bearer_scheme.scheme_name: []}]


class Unauthorized(ServiceError):
    status_code = 401
    error_type = "unauthorized"

    def __init__(self, msg: str) -> None:
        super().__init__(msg, ("header", "Authorization"), headers={"WWW-Authenticate": "Bearer"})


class KeyCache:
    """Valid keys by hash -> (caller, expiry); bounded, oldest dropped first."""

    def __init__(self, ttl_seconds: float, outage_grace_seconds: float = 0.0) -> None:
        self.ttl_seconds = ttl_seconds
        self.outage_grace_seconds = outage_grace_seconds
        self._entries: OrderedDict[str, tuple[Caller, float]] = OrderedDict()
        self._last_used_written: dict[int, float] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> Caller | None:
        """The caller while its lookup is fresh (under ``ttl_seconds`` old)."""
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry[1] <= time.monotonic():
                if entry[1] + self.outage_grace_seconds <= time.monotonic():
                    del self._entries[digest]
                return None
            return entry[0]

    def stale(self, digest: str) -> Caller | None:
        """The caller of an expired lookup still inside the outage grace: what a request
        gets while the database cannot be asked (BACKPROP_DB_OUTAGE_GRACE_SECONDS)."""
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None or entry[1] + self.outage_grace_seconds <= time.monotonic():
                return None
            return entry[0]

    def put(self, digest: str, caller: Caller) -> None:
        if self.ttl_seconds <= 0:
            return
        with self._lock:
            self._entries[digest] = (caller, time.monotonic() + self.ttl_seconds)
            self._entries.move_to_end(digest)
            while len(self._entries) > MAX_CACHED_KEYS:
                self._entries.popitem(last=False)

    def drop(self, digest: str) -> None:
        with self._lock:
            self._entries.pop(digest, None)

    def last_used_due(self, key_id: int) -> bool:
        """True (and marked written) when this process has not written it in a minute."""
        now = time.monotonic()
        with self._lock:
            written = self._last_used_written.get(key_id)
            if written is not None and now - written < LAST_USED_INTERVAL_SECONDS:
                return False
            self._last_used_written[key_id] = now
            return True


def lookup_key(database: Database, cache: KeyCache, key: str) -> Caller | None:
    """The caller for ``key`` (cached), touching ``last_used_at`` at most once a minute."""
    digest = hash_key(key)
    caller = cache.get(digest)
    if caller is not None:
        return caller
    try:
        with database.read_session() as session:
            caller = authenticate(session, key)
    except UNAVAILABLE:
        # The database is away (a restart): a key verified shortly before still answers.
        caller = cache.stale(digest)
        if caller is None:
            raise
        return caller
    if caller is None:
        cache.drop(digest)  # revoked: not even an outage brings it back
        return None
    cache.put(digest, caller)
    if cache.last_used_due(caller.key_id):
        _touch_last_used(database, caller.key_id)
    return caller


def _touch_last_used(database: Database, key_id: int) -> None:
    """Write the key's ``last_used_at`` (unless another process did within the minute).
    Bookkeeping, not the request's business: the key was just verified, so a database
    going away between that read and this write (a restart beginning) is logged and the
    request answered — it must not turn a predict into a 503. The next write is due a
    minute later."""
    now = utcnow()
    cutoff = now - timedelta(seconds=LAST_USED_INTERVAL_SECONDS)
    try:
        with database.session() as session:
            session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id)
                .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < cutoff))
                .values(last_used_at=now)
            )
    except UNAVAILABLE as exc:
        log.warning("key %d: last_used_at not written: %s", key_id, brief(exc))


def _one_authorization(connection: HTTPConnection) -> None:
    """401 for a request with several Authorization headers: which key would be meant?
    (The first would otherwise act alone, whatever the others say.)"""
    if len(connection.headers.getlist("authorization")) > 1:
        raise Unauthorized("send one Authorization header, not several")


def bearer_key(authorization: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header (as HTTPBearer reads it)."""
    scheme, _, key = (authorization or "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
    return key


async def caller_for_key(
    database: Database,
    cache: KeyCache,
    lookups: SingleFlight[str, Caller | None],
    key: str,
) -> Caller:
    """The caller owning ``key``: from the cache, else one database read shared by the
    concurrent misses of the same key (``lookups``)."""
    if not looks_like_key(key):
        raise Unauthorized("unknown or revoked API key")
    digest = hash_key(key)
    caller = cache.get(digest)
    if caller is None:
        caller = await lookups.run(digest, partial(lookup_key, database, cache, key))
    if caller is None:
        raise Unauthorized("unknown or revoked API key")
    return caller


async def require_caller(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
) -> Caller:
    """The caller of a /v1 request; 401 with ``WWW-Authenticate: Bearer`` otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
    _one_authorization(request)
    ctx = request.app.state.backprop
    return await caller_for_key(
        ctx.database, ctx.key_cache, ctx.key_lookups, credentials.credentials
    )


async def request_caller(connection: HTTPConnection) -> Caller:
    """:func:`require_caller` for an endpoint that reads the header itself (the hot path:
    no dependency solving). Declare ``SECURITY`` in its OpenAPI ``openapi_extra``."""
    key = bearer_key(connection.headers.get("authorization"))
    _one_authorization(connection)
    ctx = connection.app.state.backprop
    return await caller_for_key(ctx.database, ctx.key_cache, ctx.key_lookups, key)
