"""One epoch's metrics, as the engine records them (``app.engine.loop``, ``metrics``).

A job's history holds one per epoch (HistoryEntry adds the layer statistics); a job's and
a model's ``metrics`` are one of them; each ``epoch`` event of the event stream carries one
as its data. A metric the task or the split does not have is absent, not null.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def _absent_when_none(description: str) -> Any:
    return Field(default=None, description=description, exclude_if=lambda value: value is None)


class EpochMetrics(BaseModel):
    """Metrics of one epoch. Classifiers have accuracy, regression mae and r2; the val_
    metrics are there when the job holds rows out (validation_split > 0). Keys the engine
    adds later pass through."""

    model_config = ConfigDict(extra="allow")

    epoch: int = Field(ge=1, description="The epoch, counted from 1")
    loss: float = Field(description="Mean training loss (without the L2 penalty)")
    accuracy: float | None = _absent_when_none("Share of rows classified right")
    mae: float | None = _absent_when_none("Mean absolute error (regression)")
    r2: float | None = _absent_when_none("Coefficient of determination, averaged over outputs")
    val_loss: float | None = _absent_when_none("loss on the held-out rows")
    val_accuracy: float | None = _absent_when_none("accuracy on the held-out rows")
    val_mae: float | None = _absent_when_none("mae on the held-out rows")
    val_r2: float | None = _absent_when_none("r2 on the held-out rows")
    learning_rate: float | None = _absent_when_none("The optimizer's rate in this epoch")
    seconds: float | None = _absent_when_none("Time this epoch took")
    samples_per_second: float | None = _absent_when_none("Training rows per second")
