"""API keys: create, look up, list, revoke. Only a SHA-256 of each key is stored.

A key is ``bp_`` + 43 URL-safe characters (32 random bytes). Keys carry 256 bits of
entropy, so an unsalted SHA-256 is a sound verifier (there is nothing to brute-force);
the lookup is by hash and the final comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.services.text import has_control_character
from app.storage.database import Database
from app.storage.tables import ApiKey, Owner, utcnow

KEY_PREFIX = "bp_"
KEY_RANDOM_BYTES = 32
BOOTSTRAP_OWNER = "admin"
BOOTSTRAP_KEY_NAME = "bootstrap"


class KeyError_(ValueError):
    """A refusal of the keys verbs (duplicate name, unknown key...)."""


@dataclass(frozen=True)
class Caller:
    """Who is calling: resolved from a valid, unrevoked key."""

    owner_id: int
    owner_name: str
    key_id: int
    key_name: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def looks_like_key(key: str) -> bool:
    return key.startswith(KEY_PREFIX) and 20 <= len(key) <= 200 and key.isascii()


def _owner(session: Session, name: str) -> Owner:
    owner = session.scalar(select(Owner).where(Owner.name == name))
    if owner is None:
        owner = Owner(name=name)
        session.add(owner)
        session.flush()
    return owner


MAX_NAME = 100  # the key and owner name columns' length


def _check_name(what: str, name: str) -> None:
    """KeyError_ unless ``name`` is 1-MAX_NAME characters of one line of text."""
    if not 1 <= len(name) <= MAX_NAME or has_control_character(name):
        raise KeyError_(
            f"a {what} name is 1 to {MAX_NAME} characters without control characters "
            f"(tab, newline, NUL), not {name[:40]!r}"
        )


def register_key(session: Session, *, key: str, key_name: str, owner_name: str) -> ApiKey:
    """Store ``key`` (by hash) under ``key_name`` for ``owner_name`` (created if new)."""
    for what, name in (("key", key_name), ("owner", owner_name)):
        _check_name(what, name)
    if session.scalar(select(ApiKey.id).where(ApiKey.name == key_name)) is not None:
        raise KeyError_(f"a key named {key_name!r} already exists")
    row = ApiKey(
        owner_id=_owner(session, owner_name).id,
        name=key_name,
        key_hash=hash_key(key),
        prefix=key[: len(KEY_PREFIX) + 4],
    )
    session.add(row)
    session.flush()
    return row


def create_key(session: Session, *, key_name: str, owner_name: str | None = None) -> str:
    """Make a new key; returns it (the only time it is ever seen). Owner defaults to the name."""
    key = generate_key()
    register_key(session, key=key, key_name=key_name, owner_name=owner_name or key_name)
    return key


def ensure_bootstrap_key(session: Session, key: str) -> bool:
    """Register ``key`` for owner ``admin`` unless it is already there. True if added."""
    if not looks_like_key(key):
        raise KeyError_(
            f"BACKPROP_BOOTSTRAP_KEY must start with {KEY_PREFIX!r} and be 20-200 chars"
        )
    if session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key))) is not None:
        return False
    name = BOOTSTRAP_KEY_NAME
    suffix = 2
    while session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        name = f"{BOOTSTRAP_KEY_NAME}-{suffix}"
        suffix += 1
    register_key(session, key=key, key_name=name, owner_name=BOOTSTRAP_OWNER)
    return True


def has_any_key(session: Session) -> bool:
    return session.scalar(select(ApiKey.id).limit(1)) is not None


def list_keys(session: Session) -> list[tuple[ApiKey, str]]:
    """Every key with its owner's name, oldest first (never the key itself)."""
    rows = session.execute(
        select(ApiKey, Owner.name).join(Owner, Owner.id == ApiKey.owner_id).order_by(ApiKey.id)
    )
    return [(key, owner_name) for key, owner_name in rows]


def revoke_key(session: Session, *, key_name: str) -> bool:
    """Revoke the key named ``key_name``; False when there is no such live key."""
    row = session.scalar(select(ApiKey).where(ApiKey.name == key_name))
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True


def authenticate(session: Session, key: str) -> Caller | None:
    """The caller for a live key, or None. Constant-time comparison of the stored hash."""
    if not looks_like_key(key):
        return None
    digest = hash_key(key)
    row = session.execute(
        select(ApiKey, Owner.name)
        .join(Owner, Owner.id == ApiKey.owner_id)
        .where(ApiKey.key_hash == digest)
    ).first()
    if row is None:
        return None
    api_key, owner_name = row
    if api_key.revoked_at is not None or not hmac.compare_digest(api_key.key_hash, digest):
        return None
    return Caller(api_key.owner_id, owner_name, api_key.id, api_key.name)


def prepare_keys(database: Database, settings: Settings) -> str | None:
    """Register BACKPROP_BOOTSTRAP_KEY; when the database has no key at all, create one
    for owner ``admin`` and return it (the only time it exists in clear)."""
    with database.session() as session:
        if settings.bootstrap_key:
            ensure_bootstrap_key(session, settings.bootstrap_key)
        if has_any_key(session):
            return None
        return create_key(session, key_name=BOOTSTRAP_KEY_NAME, owner_name=BOOTSTRAP_OWNER)
