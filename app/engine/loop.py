"""The epoch loop and its progress reporting: where a training run stands, the minibatch
steps of each epoch, and the metrics, history and early stopping at each epoch's end.

Per epoch: the learning rate is set from the schedule; the training rows are permuted
into a reused buffer (one ``np.take`` with ``mode="clip"``, which writes straight into
``out``), so each minibatch is a contiguous slice of it; every batch is one step —
forward and backward (``network``), then the update (``optimizers``: L2, clipping, the
optimizer's step) — with no gathering and no allocation, since the batch slices, the
workspaces and the slices of the logits buffer that the output layer writes z[L] into
are built once per run. The epoch's training metrics are computed afterwards from those
logits, without another pass over the data, plus one forward pass over the validation
rows.

The permutation of epoch e is a pure function of (seed, e), so a resumed run shuffles
exactly like the uninterrupted one without carrying any generator state.

The best score is the validation loss when there is validation data, else the training
loss. It improves when it falls below best - min_delta, and its weights are kept in
``best_params``; ``wait`` counts the epochs since the last improvement, and early
stopping fires when it reaches the patience (the run then ends with the best weights).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import activations, metrics, optimizers, schedules
from app.engine.errors import DivergenceError, ExportFormatError
from app.engine.network import Network, Workspace
from app.engine.options import EarlyStoppingOptions, TrainingOptions
from app.engine.trainingdata import TrainingData

Array = npt.NDArray[np.floating[Any]]
SHUFFLE_STREAM = 1  # separates the shuffling stream from the validation split's
CHECK_EVERY = 64  # batches between checks of the logits for NaN / inf
EVAL_ROWS = 8192  # validation rows per forward pass, to bound memory


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


class NonFiniteOutput(ArithmeticError):
    """The output layer produced NaN or inf in the middle of an epoch."""


class EpochLoop:
    """Epochs of minibatch steps training ``network`` in place on ``data``, with the
    optimizer, the buffers, the progress and the best weights of the run."""

    def __init__(self, network: Network, data: TrainingData, options: TrainingOptions) -> None:
        self.network, self.data, self.options = network, data, options
        x, y = data.x, data.y
        n = x.shape[0]
        size = min(options.batch_size, n)
        self.grads = np.zeros_like(network.params)
        self.optimizer = optimizers.get(options.optimizer.name)(network.params, options.optimizer)
        self.update = optimizers.make_update(
            self.optimizer,
            network.params,
            self.grads,
            network.weight_count,
            options.l2,
            options.clip_norm,
        )
        # Without shuffling the batches are slices of x itself. An unaligned x (a view of
        # stored npz bytes, when nothing else copied it) is copied once here: BLAS would
        # otherwise copy every batch of it.
        self.xs = np.empty_like(x) if options.shuffle else np.require(x, requirements="A")
        self.ys = np.empty_like(y) if options.shuffle else y
        self.logits = np.empty((n, network.output_size), dtype=network.dtype)
        full = network.workspace(size, self.grads)
        tail = network.workspace(n % size, self.grads) if n % size else full
        self.batches: list[tuple[Array, Array, Array, Workspace]] = []
        for start in range(0, n, size):
            stop = min(start + size, n)
            work = full if stop - start == size else tail
            self.batches.append(
                (self.xs[start:stop], self.ys[start:stop], self.logits[start:stop], work)
            )
        self.ends = [min(start + size, n) for start in range(0, n, size)]
        self.progress = Progress()
        self.best_params = network.params.copy()
        self._arranged: int | None = None  # the epoch whose row order xs / ys hold

    def rows(self, batches: int) -> int:
        """Rows covered by the first ``batches`` batches of an epoch."""
        return self.ends[batches - 1] if batches else 0

    def run(
        self,
        on_epoch: Callable[[dict[str, float]], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> bool:
        """Train until the epochs are done, early stopping fires (the best weights are
        then restored) or ``should_stop()``; True when ``should_stop`` ended it.

        Raises DivergenceError if the loss, the outputs or the weights become non-finite.
        """
        options, progress = self.options, self.progress
        schedule = schedules.get(options.lr_schedule.name)
        while progress.epoch < options.epochs and not progress.early_stopped:
            rate = schedule(
                options.optimizer.learning_rate, progress.epoch, options.epochs, options.lr_schedule
            )
            self.optimizer.learning_rate = rate
            self._arrange(progress.epoch)
            start, started = progress.batches_done, time.perf_counter()
            try:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    done = self._steps(start, should_stop)
            except (NonFiniteOutput, optimizers.NonFiniteGradient):
                raise self._diverged("the outputs or gradients became NaN or infinite") from None
            progress.epoch_seconds += time.perf_counter() - started
            progress.samples_trained += self.rows(done) - self.rows(start)
            progress.batches_done = done
            if done < len(self.batches):
                return True
            entry = self._end_epoch(rate)
            if on_epoch is not None:
                on_epoch(dict(entry))
        if options.early_stopping is not None:
            self.network.params[...] = self.best_params
        return False

    def _arrange(self, epoch: int) -> None:
        """Put the rows in epoch ``epoch``'s order (no-op without shuffling or when done)."""
        if not self.options.shuffle or self._arranged == epoch:
            return
        order = np.random.default_rng([self.options.seed, SHUFFLE_STREAM, epoch]).permutation(
            self.data.x.shape[0]
        )
        np.take(self.data.x, order, axis=0, out=self.xs, mode="clip")
        np.take(self.data.y, order, axis=0, out=self.ys, mode="clip")
        self._arranged = epoch

    def _steps(self, start: int, should_stop: Callable[[], bool] | None) -> int:
        """Steps from batch ``start`` to the end of the epoch; returns the batches done.

        ``should_stop`` is asked before every batch; a True ends the epoch early. Raises
        NonFiniteOutput if the logits turn NaN / inf.
        """
        batches, forward, update = self.batches, self.network.propagate, self.update
        for index in range(start, len(batches)):
            if should_stop is not None and should_stop():
                return index
            x, y, z, work = batches[index]
            forward(x, work.hidden, z, work.output)  # z[L] into the epoch's logits
            work.backward(x, y)
            update()
            if index % CHECK_EVERY == CHECK_EVERY - 1 and not np.isfinite(z).all():
                raise NonFiniteOutput
        return len(batches)

    def _end_epoch(self, rate: float) -> dict[str, float]:
        """Metrics of the finished epoch; history entry keys: epoch, loss, accuracy or
        mae + r2, the same with val_ when validating, learning_rate, seconds and
        samples_per_second."""
        started = time.perf_counter()
        data, network = self.data, self.network
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            z = self.logits
            if data.task == "multiclass":
                # The cross-entropy value reads z only and argmax(softmax(z)) = argmax(z):
                # the epoch's softmax, the dearest part of these metrics, is not needed.
                a = z
            else:
                a = np.empty_like(z)
                activations.ACTIVATIONS[network.activations[-1]](z, a)
            scores = metrics.evaluate(data.task, network.loss, z, a, self.ys)
            if data.x_val is not None and data.y_val is not None:
                val = self._evaluate(data.x_val, data.y_val)
                scores.update({f"val_{name}": value for name, value in val.items()})
        if (
            not all(math.isfinite(v) for v in scores.values())
            or not np.isfinite(network.params).all()
        ):
            raise self._diverged(f"the loss became {scores['loss']}")
        seconds = self.progress.epoch_seconds + time.perf_counter() - started
        entry: dict[str, float] = {
            "epoch": self.progress.epoch + 1,
            **scores,
            "learning_rate": rate,
        }
        entry["seconds"] = seconds
        entry["samples_per_second"] = data.x.shape[0] / seconds if seconds > 0 else 0.0
        if self.progress.end_epoch(entry, self.options.early_stopping):
            self.best_params[...] = network.params
        return entry

    def _evaluate(self, x: Array, y: Array) -> dict[str, float]:
        parts = [
            self.network.forward_output(x[i : i + EVAL_ROWS])
            for i in range(0, x.shape[0], EVAL_ROWS)
        ]
        z = np.concatenate([p[0] for p in parts])
        a = np.concatenate([p[1] for p in parts])
        return metrics.evaluate(self.data.task, self.network.loss, z, a, y)

    def _diverged(self, reason: str) -> DivergenceError:
        rate = self.optimizer.learning_rate
        return DivergenceError(
            f"training diverged in epoch {self.progress.epoch + 1}: {reason}. Lower the "
            f"learning rate (now {rate:g}; try {rate / 10:g}) or set clip_norm.",
            ("optimizer", "learning_rate"),
        )
