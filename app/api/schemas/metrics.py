"""One epoch's metrics, as the engine records them (``app.engine.loop``, ``metrics``).

A job's history holds one per epoch; a job's and a model's ``metrics`` are one of them;
each ``epoch`` event of the event stream carries one as its data.
"""

from __future__ import annotations

from typing import Annotated, NotRequired

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict


@with_config(ConfigDict(extra="allow"))
class EpochMetrics(TypedDict):
    """Metrics of one epoch. Classifiers have accuracy, regression mae and r2; the val_
    metrics are there when the job holds rows out (validation_split > 0). Keys the
    engine adds later pass through."""

    epoch: Annotated[int, Field(ge=1, description="The epoch, counted from 1")]
    loss: Annotated[float, Field(description="Mean training loss (without the L2 penalty)")]
    accuracy: NotRequired[Annotated[float, Field(description="Share of rows classified right")]]
    mae: NotRequired[Annotated[float, Field(description="Mean absolute error (regression)")]]
    r2: NotRequired[
        Annotated[float, Field(description="Coefficient of determination, averaged over outputs")]
    ]
    val_loss: NotRequired[float]
    val_accuracy: NotRequired[float]
    val_mae: NotRequired[float]
    val_r2: NotRequired[float]
    learning_rate: NotRequired[
        Annotated[float, Field(description="The optimizer's rate in this epoch")]
    ]
    seconds: NotRequired[Annotated[float, Field(description="Time this epoch took")]]
    samples_per_second: NotRequired[
        Annotated[float, Field(description="Training rows per second in this epoch")]
    ]
