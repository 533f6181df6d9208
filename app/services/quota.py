"""Per-owner storage quota (``BACKPROP_MAX_OWNER_BYTES``): the bytes of an owner's stored
datasets and models, summed in SQL from their rows' blob sizes (no blob is read),
checked before a dataset or model is stored and before a job that will store a model."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.services.errors import LimitExceeded, Loc
from app.storage.tables import Dataset, Model, Owner

SETTING = "BACKPROP_MAX_OWNER_BYTES"


def stored_bytes(session: Session, owner_id: int) -> int:
    """Bytes of the owner's datasets (their x and y blobs) and models (their weights)."""
    total = 0
    for column, table in ((Dataset.size_bytes, Dataset), (Model.weights_size, Model)):
        size = select(func.coalesce(func.sum(column), 0))
        total += int(session.scalar(size.where(table.owner_id == owner_id)) or 0)
    return total


def check_owner_bytes(
    session: Session, settings: Settings, *, owner_id: int, adding: int, loc: Loc
) -> None:
    """413 naming the setting when storing ``adding`` more bytes would take the owner over
    the quota. Locks the owner row (PostgreSQL) so two uploads cannot both take the rest."""
    session.scalar(select(Owner.id).where(Owner.id == owner_id).with_for_update())
    total = stored_bytes(session, owner_id) + adding
    if total > settings.max_owner_bytes:
        raise LimitExceeded(
            "the owner's stored bytes with this one",
            total,
            setting=SETTING,
            limit=settings.max_owner_bytes,
            loc=loc,
        )
