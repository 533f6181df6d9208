"""Per-owner storage quota (``BACKPROP_MAX_OWNER_BYTES``): the bytes of an owner's stored
datasets, models and prediction outputs, summed in SQL from their rows' sizes (no blob
is read), checked before a dataset or model is stored, before a job that will store a
model and before a prediction run (whose estimated outputs stay reserved while it runs)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.config import Settings
from app.services.errors import LimitExceeded, Loc
from app.storage.usage import QUOTA_SETTING as SETTING
from app.storage.usage import lock_owner, stored_bytes


def check_owner_bytes(
    session: Session, settings: Settings, *, owner_id: int, adding: int, loc: Loc
) -> None:
    """413 naming the setting when storing ``adding`` more bytes would take the owner over
    the quota. Locks the owner row (PostgreSQL) so two uploads cannot both take the rest."""
    lock_owner(session, owner_id)
    total = stored_bytes(session, owner_id) + adding
    if total > settings.max_owner_bytes:
        raise LimitExceeded(
            "the owner's stored bytes with this one",
            total,
            setting=SETTING,
            limit=settings.max_owner_bytes,
            loc=loc,
        )
