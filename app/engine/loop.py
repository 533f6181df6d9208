"""The epoch loop and its progress reporting: where a training run stands, the minibatch
steps of each epoch, and the metrics, history and early stopping at each epoch's end.

Per epoch: the learning rate is set from the schedule; the training rows' numbers (into
x, which is never copied nor written: it may be a read-only memory map) are permuted,
and the targets with them; every batch is one step — its rows gathered into one reused
(batch, n[0]) buffer (one ``np.take`` with ``mode="clip"``, which writes straight into
``out``) and standardised there, then forward and backward (``network``), then the
update (``optimizers``: L2, clipping, the optimizer's step) — with no allocation, since
the batch buffer, the workspaces and the slices of the logits buffer that the output
layer writes z[L] into are built once per run. Without shuffling, standardisation or a
split the batches are plain slices of x. The epoch's training metrics are computed
afterwards from those logits, without another pass over the data, plus one forward pass
over the validation rows, gathered in blocks of EVAL_ROWS into buffers of the run.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import activations, diagnostics, metrics, optimizers, preprocessing, schedules
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


def _entry(entry: Any) -> dict[str, Any]:
    """A history entry read back: numbers, plus the per-layer statistics as stored."""
    layers = entry.get("layers")
    if layers is not None and not (
        isinstance(layers, list) and all(isinstance(layer, dict) for layer in layers)
    ):
        raise TypeError("the layer statistics are damaged")
    scores = {str(k): _number(v) for k, v in entry.items() if k != "layers"}
    return scores if layers is None else {**scores, "layers": layers}


def scores_of(entry: dict[str, Any]) -> dict[str, float]:
    """A history entry's numbers (metrics, rate, timing), without its layer statistics."""
    return {k: v for k, v in entry.items() if k != "layers"}


@dataclass
class Progress:
    """Counters of a run; ``batches_done`` and ``epoch_seconds`` are for the epoch in
    progress (0 at an epoch boundary). ``best_entry`` is the best epoch's history entry
    (its numbers). ``history`` holds the entries of the epochs this process ran (and those
    handed to ``Trainer.resume``); it is not part of the checkpoint, whose size therefore
    does not grow with the epochs done."""

    epoch: int = 0
    batches_done: int = 0
    epoch_seconds: float = 0.0
    samples_trained: int = 0
    best_score: float | None = None
    best_epoch: int = 0
    wait: int = 0
    early_stopped: bool = False
    best_entry: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def end_epoch(self, entry: dict[str, Any], stopping: EarlyStoppingOptions | None) -> bool:
        """Record a finished epoch; True when its score is a new best."""
        self.epoch += 1
        self.batches_done, self.epoch_seconds = 0, 0.0
        self.history.append(entry)
        score = entry.get("val_loss", entry["loss"])
        min_delta = stopping.min_delta if stopping is not None else 0.0
        improved = self.best_score is None or score < self.best_score - min_delta
        if improved:
            self.best_score, self.best_epoch, self.wait = score, self.epoch, 0
            self.best_entry = scores_of(entry)
        else:
            self.wait += 1
        if stopping is not None and self.wait >= stopping.patience:
            self.early_stopped = True
        return improved

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe copy of every counter and the best entry (not the history)."""
        # Field by field: asdict would deep-copy the history only to drop it.
        state = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "history"}
        state["best_entry"] = None if self.best_entry is None else dict(self.best_entry)
        return state

    @classmethod
    def from_dict(cls, data: Any) -> Progress:
        """The inverse of ``to_dict``; ExportFormatError if the values are damaged. A
        version 1 checkpoint's embedded history is read back (and its best entry taken)."""
        try:
            history = [_entry(entry) for entry in data.get("history", [])]
            best_entry = data.get("best_entry")
            best_epoch = int(data["best_epoch"])
            if best_entry is None and 0 < best_epoch <= len(history):
                best_entry = history[best_epoch - 1]
            progress = cls(
                epoch=int(data["epoch"]),
                batches_done=int(data["batches_done"]),
                epoch_seconds=float(data["epoch_seconds"]),
                samples_trained=int(data["samples_trained"]),
                best_score=None if data["best_score"] is None else float(data["best_score"]),
                best_epoch=best_epoch,
                wait=int(data["wait"]),
                early_stopped=bool(data["early_stopped"]),
                best_entry=None if best_entry is None else scores_of(_entry(best_entry)),
                history=history,
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
        # Pause at this epoch count (a sweep's rung) though options.epochs is further on;
        # the schedule still runs over options.epochs and a later run continues.
        self.stop_at: int | None = None
        n = data.train_count
        size = min(options.batch_size, n)
        # Per-layer statistics (``diagnostics``) want the gradient beside the activations.
        self.watch = diagnostics.LayerWatch(network, size) if options.diagnostics else None
        self.grads = self.watch.grads if self.watch is not None else np.zeros_like(network.params)
        self.optimizer = optimizers.get(options.optimizer.name)(network.params, options.optimizer)
        self.update = optimizers.make_update(
            self.optimizer,
            network.params,
            self.grads,
            network.weight_count,
            options.l2,
            options.clip_norm,
            self.watch.gauge if self.watch is not None else None,
        )
        # Without shuffling, standardising or a split the batches are slices of x itself
        # (``xs``); an unaligned x (a view of stored npz bytes) is copied once here, as BLAS
        # would otherwise copy every batch of it. Otherwise each batch's rows are gathered
        # into one reused buffer and standardised there (``_fill``): x is never copied.
        direct = not options.shuffle and data.standardizer is None and data.train_rows is None
        self.xs: Array | None = np.require(data.x, requirements="A") if direct else None
        source = (
            self.xs if self.xs is not None else np.empty((size, network.input_size), network.dtype)
        )
        # The training rows of x in this epoch's order (None: all rows in order).
        self.order: npt.NDArray[np.intp] | None = data.train_rows
        if options.shuffle:
            self.order = np.empty(n, dtype=np.intp)
            self.ys = np.empty((n, data.y.shape[1]), dtype=data.y.dtype)
        else:
            self.ys = data.y if data.train_rows is None else data.y[data.train_rows]
        self.logits = np.empty((n, network.output_size), dtype=network.dtype)
        # With diagnostics, a full batch's activations live in the block that follows the
        # gradient (``LayerWatch.block``), so the statistics take both with one copy.
        block = self.watch.block if self.watch is not None else None
        full = network.workspace(size, self.grads, block)
        tail = network.workspace(n % size, self.grads) if n % size else full
        self.batches: list[tuple[Array, Array, Array, Workspace]] = []
        self.spans: list[slice] = []
        for start in range(0, n, size):
            stop = min(start + size, n)
            work = full if stop - start == size else tail
            x = source[start:stop] if direct else source[: stop - start]
            self.batches.append((x, self.ys[start:stop], self.logits[start:stop], work))
            self.spans.append(slice(start, stop))
        self.ends = [span.stop for span in self.spans]
        self._evaluation_buffers()
        # Fresh buffers get their pages on first write: take those faults now, before the
        # epoch clock runs, rather than in the first epoch.
        fresh: list[npt.NDArray[Any]] = [self.logits, *self.fresh_evaluation_buffers]
        if self.xs is None:
            fresh.append(source)
        if self.order is not None and options.shuffle:
            fresh += [self.order, self.ys]
        for buffer in fresh:
            buffer.fill(0)
        np.dot(source[:size], network.weights_t[0])  # BLAS sets up its buffers on the first call
        self.progress = Progress()
        self.best_params = network.params.copy()
        self._arranged: int | None = None  # the epoch whose row order order / ys hold

    def _evaluation_buffers(self) -> None:
        """Buffers of the validation pass, made once per run: the features of a block of
        at most EVAL_ROWS rows (n[0] columns) and its hidden layers, the logits and outputs
        of every validation row, and their targets."""
        data, network = self.data, self.network
        count = data.val_count
        self.fresh_evaluation_buffers: list[Array] = []
        self._val_gathered = False  # val_x holds every validation row, standardised
        if data.x_val is None or data.y_val is None or not count:
            return
        rows, dtype = min(EVAL_ROWS, count), network.dtype
        self.val_x = np.empty((rows, network.input_size), dtype=dtype)
        self.val_hidden = [np.empty((rows, n), dtype=dtype) for n in network.layer_sizes[:-1]]
        self.val_z = np.empty((count, network.output_size), dtype=dtype)
        self.val_a = np.empty_like(self.val_z)
        self.val_y = data.y_val if data.val_rows is None else data.y_val[data.val_rows]
        self.fresh_evaluation_buffers = [self.val_x, *self.val_hidden, self.val_z, self.val_a]

    def rows(self, batches: int) -> int:
        """Rows covered by the first ``batches`` batches of an epoch."""
        return self.ends[batches - 1] if batches else 0

    def run(
        self,
        on_epoch: Callable[[dict[str, Any]], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> bool:
        """Train until the epochs are done, early stopping fires (the best weights are
        then restored) or ``should_stop()``; True when ``should_stop`` ended it.

        Raises DivergenceError if the loss, the outputs or the weights become non-finite.
        """
        options, progress = self.options, self.progress
        schedule = schedules.get(options.lr_schedule.name)
        target = min(options.epochs, self.stop_at or options.epochs)
        while progress.epoch < target and not progress.early_stopped:
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
        paused = progress.epoch < options.epochs and not progress.early_stopped
        if options.early_stopping is not None and not paused:
            self.network.params[...] = self.best_params
        return False

    def _arrange(self, epoch: int) -> None:
        """Put the rows in epoch ``epoch``'s order (no-op without shuffling or when done):
        ``order`` (row numbers into x) and ``ys`` (the targets in that order)."""
        if not self.options.shuffle or self._arranged == epoch or self.order is None:
            return
        permutation = np.random.default_rng([self.options.seed, SHUFFLE_STREAM, epoch]).permutation(
            self.data.train_count
        )
        train = self.data.train_rows
        if train is None:
            self.order[...] = permutation
        else:
            np.take(train, permutation, out=self.order, mode="clip")
        np.take(self.data.y, self.order, axis=0, out=self.ys, mode="clip")
        self._arranged = epoch

    def _fill(self, index: int, out: Array) -> None:
        """Batch ``index``'s rows of x, gathered into ``out`` and standardised there."""
        span = self.spans[index]
        rows = span if self.order is None else self.order[span]
        preprocessing.gather(self.data.x, rows, out, self.data.standardizer)

    def _steps(self, start: int, should_stop: Callable[[], bool] | None) -> int:
        """Steps from batch ``start`` to the end of the epoch; returns the batches done.

        ``should_stop`` is asked before every batch; a True ends the epoch early. Raises
        NonFiniteOutput if the logits turn NaN / inf.
        """
        batches, forward, update = self.batches, self.network.propagate, self.update
        watch = self.watch.step if self.watch is not None else None
        fill = None if self.xs is not None else self._fill
        for index in range(start, len(batches)):
            if should_stop is not None and should_stop():
                return index
            x, y, z, work = batches[index]
            if fill is not None:
                fill(index, x)  # the batch's rows into x, standardised
            forward(x, work.hidden, z, work.output)  # z[L] into the epoch's logits
            work.backward(x, y)
            if watch is not None:
                watch(work)  # layer statistics, before the update reuses the gradient
            update()
            if index % CHECK_EVERY == CHECK_EVERY - 1 and not np.isfinite(z).all():
                raise NonFiniteOutput
        return len(batches)

    def _end_epoch(self, rate: float) -> dict[str, Any]:
        """Metrics of the finished epoch; history entry keys: epoch, loss, accuracy or
        mae + r2, the same with val_ when validating, learning_rate, seconds and
        samples_per_second; with diagnostics, layers (see ``diagnostics``)."""
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
            if data.val_count:
                val = self._evaluate()
                scores.update({f"val_{name}": value for name, value in val.items()})
        if (
            not all(math.isfinite(v) for v in scores.values())
            or not np.isfinite(network.params).all()
        ):
            raise self._diverged(f"the loss became {scores['loss']}")
        seconds = self.progress.epoch_seconds + time.perf_counter() - started
        entry: dict[str, Any] = {
            "epoch": self.progress.epoch + 1,
            **scores,
            "learning_rate": rate,
        }
        entry["seconds"] = seconds
        entry["samples_per_second"] = data.train_count / seconds if seconds > 0 else 0.0
        if self.progress.end_epoch(entry, self.options.early_stopping):
            self.best_params[...] = network.params
        if self.watch is not None:
            epoch, epochs = self.progress.epoch, self.options.epochs
            snapshot = (
                epoch % diagnostics.snapshot_every(epochs) == 0
                or epoch == epochs
                or self.progress.early_stopped
            )
            entry["layers"] = self.watch.end_epoch(snapshot)
        return entry

    def _evaluate(self) -> dict[str, float]:
        """Metrics of the validation rows, forwarded in blocks of at most EVAL_ROWS rows
        gathered (and standardised) into the run's evaluation buffers. When they fit in
        one block the buffer keeps them from one epoch to the next: they are gathered once
        per run, not once per epoch (a tenth of a small run's epoch-end time)."""
        data, propagate = self.data, self.network.propagate
        assert data.x_val is not None
        if self._val_gathered:
            blocks: Iterable[tuple[slice, Array]] = [(slice(0, data.val_count), self.val_x)]
        else:
            blocks = data.blocks(data.x_val, data.val_rows, self.val_x)
            self._val_gathered = data.val_count <= self.val_x.shape[0]
        for where, x in blocks:
            hidden = [h[: x.shape[0]] for h in self.val_hidden]
            propagate(x, hidden, self.val_z[where], self.val_a[where])
        return metrics.evaluate(data.task, self.network.loss, self.val_z, self.val_a, self.val_y)

    def _diverged(self, reason: str) -> DivergenceError:
        rate = self.optimizer.learning_rate
        return DivergenceError(
            f"training diverged in epoch {self.progress.epoch + 1}: {reason}. Lower the "
            f"learning rate (now {rate:g}; try {rate / 10:g}) or set clip_norm.",
            ("optimizer", "learning_rate"),
        )
