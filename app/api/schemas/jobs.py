"""Training job bodies: what to train, with which options; its state as it runs."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.metrics import EpochMetrics
from app.api.schemas.names import name_enum
from app.api.schemas.options import OptionsBody, OptionsRead, options_model
from app.engine import findings
from app.engine.options import TrainingOptions
from app.storage.tables import Job, JobStatus


class JobTarget(OptionsBody):
    """What to train (and from which model); JobCreate adds the training options."""

    model_config = ConfigDict(
        extra="forbid",
        use_enum_values=True,
        json_schema_extra={
            "examples": [
                {
                    "network_id": "net_0123456789abcdef",
                    "dataset_id": "ds_0123456789abcdef",
                    "epochs": 200,
                    "batch_size": 32,
                    "optimizer": {"name": "adam", "learning_rate": 0.01},
                    "validation_split": 0.2,
                    "early_stopping": {"patience": 20, "min_delta": 0.0},
                    "seed": 0,
                }
            ]
        },
    )

    network_id: str = Field(max_length=64)
    dataset_id: str = Field(max_length=64)
    init_model_id: str | None = Field(
        default=None, max_length=64, description="Start from this model's weights"
    )


# The job body: JobTarget's fields plus one field per engine training option, generated
# from app.engine.options. mypy cannot see generated fields; to it the body is a JobTarget
# (the routes read only JobTarget's fields by name and dump the rest).
if TYPE_CHECKING:
    JobCreate = JobTarget
    JobOptions = OptionsRead
else:
    JobCreate = options_model(TrainingOptions, "JobCreate", JobTarget)
    # A job's options as it reports them: the same fields, every one sent.
    JobOptions = options_model(TrainingOptions, "JobOptions", OptionsRead)


class JobCancel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"keep_model": True}]}
    )

    keep_model: bool = Field(
        default=False, strict=True, description="Running job: keep its best-so-far model as a model"
    )


class JobSummary(BaseModel):
    """A job as lists show it: its state and latest metrics, without the per-epoch history
    (which grows with every epoch; GET /v1/jobs/{id} has it)."""

    id: str
    status: JobStatus
    network_id: str | None
    dataset_id: str | None
    init_model_id: str | None
    model_id: str | None = Field(description="The trained model, once there is one")
    epoch: int = Field(description="Epochs completed")
    epochs: int
    metrics: EpochMetrics | None = Field(description="Latest epoch's metrics")
    error: str | None
    attempts: int = Field(
        description="Times a worker has taken the job, the running one included (a graceful "
        "shutdown's hand-back does not count)",
        examples=[4],
    )
    attempts_without_progress: int = Field(
        description="Attempts whose worker died before saving a checkpoint: only these count "
        "toward BACKPROP_MAX_ATTEMPTS (a worker killed after progress is preemption)",
        examples=[0],
    )
    cancel_requested: bool
    samples_per_second: float | None
    sweep_id: str | None = Field(
        description="The sweep this job is a trial of (null for a job submitted on its own)",
        examples=["swp_0123456789abcdef"],
    )
    trial_index: int | None = Field(
        description="Its trial's index in the sweep (GET /v1/sweeps/{id} trials[].index)",
        examples=[3],
    )
    options: JobOptions
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, job: Job, model_id: str | None) -> Self:
        return cls(**_summary_fields(job, model_id))


class WeightHistogram(BaseModel):
    """W[l]'s values in equal bins from ``low`` to ``high`` (null when not finite)."""

    low: float | None
    high: float | None
    counts: list[int]


class LayerStats(BaseModel):
    """One layer's statistics over one epoch (app.engine.diagnostics); null where a
    value is undefined (NaN / inf) or does not apply to the layer's activation."""

    weight_norm: float | None = Field(description="‖W‖ (Frobenius) at the end of the epoch")
    grad_norm: float | None = Field(
        description="‖dL/dW‖ of each batch (data loss, before l2 and clipping), averaged"
    )
    update_ratio: float | None = Field(description="‖W_end - W_start‖ / ‖W_end‖ over the epoch")
    activation_mean: float | None = Field(
        description="Mean of the layer's outputs a over the epoch (softmax: 1/n, each row "
        "summing to 1)"
    )
    activation_std: float | None = Field(
        description="Standard deviation of the layer's outputs a over the epoch"
    )
    dead_fraction: float | None = Field(
        description="relu / leaky_relu: share of units with z <= 0 for every sample"
    )
    saturated_fraction: float | None = Field(
        description="sigmoid / tanh: share of activations within 1% of their bounds"
    )
    histogram: WeightHistogram | None = Field(
        default=None, description="Snapshot epochs only (every few epochs and the last)"
    )
    dead_units: list[int] | None = Field(
        default=None, description="Snapshot epochs, relu / leaky_relu: the dead units' indices"
    )


class HistoryEntry(EpochMetrics):
    """One epoch: its metrics (EpochMetrics) and its layer statistics."""

    layers: list[LayerStats] | None = Field(
        default=None, description="One per layer, in order (null with diagnostics off)"
    )


FindingKind = name_enum("FindingKind", findings.KINDS)


class Finding(BaseModel):
    """A plain-language diagnosis of the run (app.engine.findings), with what to try."""

    model_config = ConfigDict(use_enum_values=True)

    epoch: int = Field(description="The epoch that shows it")
    layer: int | None = Field(description="Layer 1..L it is about, or null for the run")
    kind: FindingKind  # type: ignore[valid-type]
    message: str


class JobRead(JobSummary):
    """One job in full: its summary plus the history of every epoch so far."""

    history: list[HistoryEntry] = Field(description="One entry per epoch")
    findings: list[Finding] = Field(description="What the statistics say, with suggestions")

    @classmethod
    def from_row(cls, job: Job, model_id: str | None) -> Self:
        return cls(
            **_summary_fields(job, model_id),
            history=job.history or [],
            findings=job.findings or [],
        )


def _summary_fields(job: Job, model_id: str | None) -> dict[str, Any]:
    """JobSummary's fields of a row (touches no history: lists leave it unloaded)."""
    speed = job.samples_trained / job.train_seconds if job.train_seconds > 0 else None
    return {
        "id": job.id,
        "status": JobStatus(job.status),
        "network_id": job.network_id,
        "dataset_id": job.dataset_id,
        "init_model_id": job.init_model_id,
        "model_id": model_id,
        "epoch": job.epoch,
        "epochs": job.epochs,
        "metrics": job.metrics,
        "error": job.error,
        "attempts": job.attempts,
        "attempts_without_progress": job.attempts_without_progress,
        "cancel_requested": job.cancel_requested,
        "samples_per_second": speed,
        "sweep_id": job.sweep_id,
        "trial_index": job.trial_index,
        "options": job.options,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


class JobEnd(BaseModel):
    """Data of the final ``end`` event of /v1/jobs/{id}/events."""

    status: JobStatus
    model_id: str | None
    error: str | None
