"""Prediction-run bodies: which dataset to score with a model; the run's state."""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from app.storage.tables import Job, JobStatus


class PredictionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"dataset_id": "ds_0123456789abcdef"}]}
    )

    dataset_id: str = Field(
        max_length=64, description="A dataset of yours with the model's input width"
    )


class PredictionRead(BaseModel):
    """A prediction run: a worker scores every row of the dataset with the model."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "pred_0123456789abcdef",
                    "model_id": "mdl_0123456789abcdef",
                    "dataset_id": "ds_0123456789abcdef",
                    "status": "running",
                    "rows_done": 250000,
                    "rows_total": 1000000,
                    "rows_per_second": 812345.6,
                    "error": None,
                    "attempts": 1,
                    "created_at": "2026-12-01T12:00:00Z",
                    "started_at": "2026-12-01T12:00:01Z",
                    "finished_at": None,
                    "download": {
                        "npy": "/v1/predictions/pred_0123456789abcdef/download?format=npy",
                        "csv": "/v1/predictions/pred_0123456789abcdef/download?format=csv",
                    },
                }
            ]
        }
    )

    id: str
    model_id: str | None = Field(description="null once the model is deleted")
    dataset_id: str | None = Field(description="null once the dataset is deleted")
    status: JobStatus
    rows_done: int = Field(description="Rows scored so far")
    rows_total: int = Field(description="Rows of the dataset")
    rows_per_second: float | None = Field(
        description="Rows scored per second of work (all attempts); null before any"
    )
    error: str | None = Field(description="Why it failed")
    attempts: int = Field(description="Worker attempts (a resumed run counts up)")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    download: dict[str, str] | None = Field(
        description="Download paths by format (npy, csv) once the run succeeded"
    )

    @classmethod
    def from_row(cls, run: Job) -> Self:
        seconds = run.train_seconds
        done = run.status == JobStatus.SUCCEEDED
        base = f"/v1/predictions/{run.id}/download?format="
        return cls(
            id=run.id,
            model_id=run.model_id,
            dataset_id=run.dataset_id,
            status=JobStatus(run.status),
            rows_done=run.rows_done,
            rows_total=run.rows_total or 0,
            rows_per_second=run.rows_done / seconds if seconds > 0 and run.rows_done else None,
            error=run.error,
            attempts=run.attempts,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            download={name: base + name for name in ("npy", "csv")} if done else None,
        )
