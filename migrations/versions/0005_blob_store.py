"""Array payloads move from database rows into the blob store.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

datasets.data (an npz of x, y) becomes two ``.npy`` blobs referenced by x_sha256 and
y_sha256 (with y's dtype and shape, and the size of both); models.weights becomes
weights_sha256 (and weights_size, for the owner quota) and jobs.checkpoint becomes
checkpoint_sha256. The blob store comes from
``config.attributes["blob_store"]`` (see app/storage/migrations.py); it is opened only
when a row holds data. Rows are moved one at a time, so memory holds one payload at most.
Downgrading reads the blobs back into the rows (the blobs stay; `backprop gc` removes them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import context, op

from app.engine.npzio import dump as dump_arrays
from app.engine.npzio import load as load_arrays
from app.storage.blob_arrays import load_array, put_array
from app.storage.blobs import BlobStore, read_verified

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _blob_store() -> BlobStore:
    """The store, opened on first use (once per migration run)."""
    attributes = context.config.attributes
    if "opened_blob_store" not in attributes:
        opener: Callable[[], BlobStore] | None = attributes.get("blob_store")
        if opener is None:
            raise RuntimeError(
                "migration 0005 moves stored arrays into the blob store, but none was given: "
                "run it with `backprop migrate` (it opens the store of BACKPROP_BLOB_URL)"
            )
        attributes["opened_blob_store"] = opener()
    store: BlobStore = attributes["opened_blob_store"]
    return store


def _table(name: str, *columns: sa.Column[Any]) -> sa.TableClause:
    return sa.table(name, sa.column("id", sa.String), *columns)


DATASETS = _table(
    "datasets",
    sa.column("data", sa.LargeBinary),
    sa.column("x_sha256", sa.String),
    sa.column("y_sha256", sa.String),
    sa.column("y_dtype", sa.String),
    sa.column("y_shape", sa.JSON),
    sa.column("size_bytes", sa.BigInteger),
)
MODELS = _table(
    "models",
    sa.column("weights", sa.LargeBinary),
    sa.column("weights_sha256"),
    sa.column("weights_size", sa.BigInteger),
)
JOBS = _table("jobs", sa.column("checkpoint", sa.LargeBinary), sa.column("checkpoint_sha256"))
MOVED_COLUMNS = ((MODELS, "weights", "weights_sha256"), (JOBS, "checkpoint", "checkpoint_sha256"))


def _ids(table: sa.TableClause, column: str) -> list[str]:
    where = table.c[column].is_not(None)
    return list(op.get_bind().scalars(sa.select(table.c.id).where(where).order_by(table.c.id)))


def _value(table: sa.TableClause, column: str, row_id: str) -> Any:
    statement = sa.select(table.c[column]).where(table.c.id == row_id)
    return op.get_bind().scalar(statement)


def _set(table: sa.TableClause, row_id: str, **values: Any) -> None:
    op.get_bind().execute(sa.update(table).where(table.c.id == row_id).values(**values))


def _dataset_to_blobs(row_id: str) -> None:
    data = bytes(_value(DATASETS, "data", row_id))
    arrays = load_arrays(data, required=("x", "y"))
    x = np.ascontiguousarray(arrays["x"], dtype=np.float32)
    y = np.ascontiguousarray(arrays["y"])
    store = _blob_store()
    x_ref, y_ref = put_array(store, x), put_array(store, y)
    _set(
        DATASETS,
        row_id,
        x_sha256=x_ref.sha256,
        y_sha256=y_ref.sha256,
        y_dtype=y.dtype.str,
        y_shape=list(y.shape),
        size_bytes=x_ref.size + y_ref.size,
    )


def _columns_to_blobs() -> None:
    for row_id in _ids(DATASETS, "data"):
        _dataset_to_blobs(row_id)
    for table, old, new in MOVED_COLUMNS:
        for row_id in _ids(table, old):
            ref = _blob_store().put_bytes(bytes(_value(table, old, row_id)))
            sizes = {"weights_size": ref.size} if table is MODELS else {}
            _set(table, row_id, **{new: ref.sha256}, **sizes)


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("x_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("y_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("y_dtype", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("y_shape", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("size_bytes", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("weights_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("weights_size", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("checkpoint_sha256", sa.String(length=64), nullable=True))

    _columns_to_blobs()

    with op.batch_alter_table("datasets") as batch:
        for name in ("x_sha256", "y_sha256"):
            batch.alter_column(name, existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("y_dtype", existing_type=sa.String(length=16), nullable=False)
        batch.alter_column("y_shape", existing_type=sa.JSON(), nullable=False)
        batch.alter_column("size_bytes", existing_type=sa.BigInteger(), nullable=False)
        batch.drop_column("data")
    with op.batch_alter_table("models") as batch:
        batch.alter_column("weights_sha256", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("weights_size", existing_type=sa.BigInteger(), nullable=False)
        batch.drop_column("weights")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("checkpoint")


def _dataset_from_blobs(row_id: str) -> None:
    store = _blob_store()
    x_sha = _value(DATASETS, "x_sha256", row_id)
    y_sha = _value(DATASETS, "y_sha256", row_id)
    arrays = {"x": load_array(store, x_sha, mmap=False), "y": load_array(store, y_sha, mmap=False)}
    _set(DATASETS, row_id, data=dump_arrays(arrays))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("data", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("weights", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("checkpoint", sa.LargeBinary(), nullable=True))

    for row_id in _ids(DATASETS, "x_sha256"):
        _dataset_from_blobs(row_id)
    for table, old, new in MOVED_COLUMNS:
        for row_id in _ids(table, new):
            _set(table, row_id, **{old: read_verified(_blob_store(), _value(table, new, row_id))})

    with op.batch_alter_table("datasets") as batch:
        batch.alter_column("data", existing_type=sa.LargeBinary(), nullable=False)
        for name in ("x_sha256", "y_sha256", "y_dtype", "y_shape", "size_bytes"):
            batch.drop_column(name)
    with op.batch_alter_table("models") as batch:
        batch.alter_column("weights", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column("weights_sha256")
        batch.drop_column("weights_size")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("checkpoint_sha256")
