"""Where a training run stands: counters, history and the best score so far.

The best score is the validation loss when there is validation data, else the training
loss. It improves when it falls below best - min_delta; ``wait`` counts the epochs since
the last improvement, and early stopping fires when it reaches the patience.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from app.engine.errors import ExportFormatError
from app.engine.options import EarlyStoppingOptions


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a number")
    return value


@dataclass
class Progress:
    """Counters of a run; ``batches_done`` and ``epoch_seconds`` are for the epoch in
    progress (0 at an epoch boundary)."""

    epoch: int = 0
    batches_done: int = 0
    epoch_seconds: float = 0.0
    samples_trained: int = 0
    best_score: float | None = None
    best_epoch: int = 0
    wait: int = 0
    early_stopped: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    def end_epoch(self, entry: dict[str, float], stopping: EarlyStoppingOptions | None) -> bool:
        """Record a finished epoch; True when its score is a new best."""
        self.epoch += 1
        self.batches_done, self.epoch_seconds = 0, 0.0
        self.history.append(entry)
        score = entry.get("val_loss", entry["loss"])
        min_delta = stopping.min_delta if stopping is not None else 0.0
        improved = self.best_score is None or score < self.best_score - min_delta
        if improved:
            self.best_score, self.best_epoch, self.wait = score, self.epoch, 0
        else:
            self.wait += 1
        if stopping is not None and self.wait >= stopping.patience:
            self.early_stopped = True
        return improved

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe copy of every counter and the history."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Progress:
        """The inverse of ``to_dict``; ExportFormatError if the values are damaged."""
        try:
            progress = cls(
                epoch=int(data["epoch"]),
                batches_done=int(data["batches_done"]),
                epoch_seconds=float(data["epoch_seconds"]),
                samples_trained=int(data["samples_trained"]),
                best_score=None if data["best_score"] is None else float(data["best_score"]),
                best_epoch=int(data["best_epoch"]),
                wait=int(data["wait"]),
                early_stopped=bool(data["early_stopped"]),
                history=[
                    {str(k): _number(v) for k, v in entry.items()} for entry in data["history"]
                ],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ExportFormatError(
                f"the checkpoint's progress is damaged ({exc})", ("checkpoint",)
            ) from exc
        if min(
            progress.epoch, progress.batches_done, progress.samples_trained, progress.wait
        ) < 0 or (progress.best_score is not None and not math.isfinite(progress.best_score)):
            raise ExportFormatError("the checkpoint's progress is damaged", ("checkpoint",))
        return progress
