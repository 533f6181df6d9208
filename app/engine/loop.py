"""The epoch loop and its progress reporting: where a training run stands, the minibatch
steps of each epoch, and the metrics, history and early stopping at each epoch's end.

Per epoch: the learning rate is set from the schedule; the training rows are put in the
epoch's order (``epochrows``: a pure function of the seed and the epoch); every batch is
one step — its features (see ``epochrows``), then forward and backward (``network``),
then the update (``optimizers``: L2, clipping, the optimizer's step) — with no
allocation, since the batch buffers, the workspaces and the slices of the logits buffer
that the output layer writes z[L] into are built once per run. The epoch's training
metrics are computed afterwards from those logits, without another pass over the data,
plus one forward pass over the validation rows, gathered in blocks of EVAL_ROWS into
buffers of the run; a softmax classifier on one-hot targets is scored from their class
numbers (``metrics.LabelScores``).

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

from app.engine import activations, diagnostics, metrics, optimizers, schedules, subnormals
from app.engine.epochrows import SHUFFLE_RULE, EpochRows
from app.engine.errors import DivergenceError, ExportFormatError
from app.engine.network import Network, Workspace, aligned_zeros
from app.engine.options import EarlyStoppingOptions, TrainingOptions
from app.engine.trainingdata import TrainingData

Array = npt.NDArray[np.floating[Any]]
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

    def __init__(
        self,
        network: Network,
        data: TrainingData,
        options: TrainingOptions,
        shuffle_rule: str = SHUFFLE_RULE,
    ) -> None:
        self.network, self.data, self.options = network, data, options
        # Pause at this epoch count (a sweep's rung) though options.epochs is further on;
        # the schedule still runs over options.epochs and a later run continues.
        self.stop_at: int | None = None
        n = data.train_count
        size = min(options.batch_size, n)
        # Per-layer statistics (``diagnostics``) want the gradient beside the activations.
        self.watch = diagnostics.LayerWatch(network, size) if options.diagnostics else None
        self.grads = (
            self.watch.grads
            if self.watch is not None
            else aligned_zeros(network.params.size, network.dtype)
        )
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
        # The rows in each epoch's order, with their targets and the batches' features.
        labelled = data.task == "multiclass"  # scored from class numbers if one-hot
        self.epoch_rows = EpochRows(
            data, size, options.shuffle, options.seed, labelled, shuffle_rule
        )
        self.xs, self.ys = self.epoch_rows.xs, self.epoch_rows.ys  # xs: x itself, or None
        self.label_scores = (
            metrics.LabelScores(n, network.output_size, network.dtype)
            if self.epoch_rows.codes is not None
            else None
        )
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
            x = self.epoch_rows.batch_x(start, stop)
            self.batches.append((x, self.ys[start:stop], self.logits[start:stop], work))
            self.spans.append(slice(start, stop))
        self.ends = [span.stop for span in self.spans]
        self._evaluation_buffers()
        # Fresh buffers get their pages on first write: take those faults now, before the
        # epoch clock runs, rather than in the first epoch.
        fresh = [self.logits, *self.fresh_evaluation_buffers, *self.epoch_rows.fresh()]
        for buffer in fresh:
            buffer.fill(0)
        # BLAS sets up its buffers on the first call
        np.dot(self.epoch_rows.source[:size], network.weights_t[0])
        self.progress = Progress()
        self.best_params = network.params.copy()

    def share_rows(self, other: EpochLoop) -> None:
        """Train on ``other``'s epoch rows instead of this loop's own: for loops on the
        same data with the same batch size, shuffling and seed (the same order and
        batches), so that trials trained together arrange one order per epoch, not one
        each. Either loop may still run alone afterwards: ``arrange`` is per epoch.
        ValueError for loops whose rows differ."""
        mine, theirs = self.epoch_rows, other.epoch_rows
        if (
            mine.data is not theirs.data
            or self.options.batch_size != other.options.batch_size
            or (mine.shuffle, mine.seed, mine.rule) != (theirs.shuffle, theirs.seed, theirs.rule)
        ):
            raise ValueError("these loops train on different rows")
        self.epoch_rows = other.epoch_rows
        self.xs, self.ys = other.xs, other.ys
        self.batches = [
            (x, y, z, work)
            for (x, y, _, _), (_, _, z, work) in zip(other.batches, self.batches, strict=True)
        ]

    def _evaluation_buffers(self) -> None:
        """Buffers of the validation pass, made once per run: the features of a block of
        at most EVAL_ROWS rows (n[0] columns) and its hidden layers, the logits and outputs
        of every validation row, and their targets."""
        data, network = self.data, self.network
        count = data.val_count
        self.fresh_evaluation_buffers: list[npt.NDArray[Any]] = []
        self._val_gathered = False  # val_x holds every validation row, standardised
        self.val_scores: metrics.LabelScores | None = None
        if data.x_val is None or data.y_val is None or not count:
            return
        rows, dtype = min(EVAL_ROWS, count), network.dtype
        self.val_x = np.empty((rows, network.input_size), dtype=dtype)
        self.val_hidden = [np.empty((rows, n), dtype=dtype) for n in network.layer_sizes[:-1]]
        self.val_z = np.empty((count, network.output_size), dtype=dtype)
        self.val_a = np.empty_like(self.val_z)
        self.val_y = data.y_val if data.val_rows is None else data.y_val[data.val_rows]
        self.fresh_evaluation_buffers = [self.val_x, *self.val_hidden, self.val_z, self.val_a]
        codes = metrics.one_hot_codes(self.val_y) if data.task == "multiclass" else None
        if codes is not None:
            self.val_codes = codes
            self.val_scores = metrics.LabelScores(count, network.output_size, dtype)

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
        target = min(options.epochs, self.stop_at or options.epochs)
        while progress.epoch < target and not progress.early_stopped:
            rate = self.start_epoch_rate()
            self.epoch_rows.arrange(progress.epoch)
            start, started = progress.batches_done, time.perf_counter()
            # The epoch's arithmetic with subnormals flushed to zero (slow on x86, and too
            # small to change a float32 weight); should_stop, asked between batches, runs
            # inside, on_epoch outside.
            with subnormals.flushed():
                try:
                    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                        done = self._steps(start, should_stop)
                except (NonFiniteOutput, optimizers.NonFiniteGradient):
                    raise self._diverged(
                        "the outputs or gradients became NaN or infinite"
                    ) from None
                progress.epoch_seconds += time.perf_counter() - started
                progress.samples_trained += self.rows(done) - self.rows(start)
                progress.batches_done = done
                if done < len(self.batches):
                    return True
                entry = self._end_epoch(rate)
            if on_epoch is not None:
                on_epoch(dict(entry))
        self.wrap_up()
        return False

    def start_epoch_rate(self) -> float:
        """The learning rate of the epoch about to run (the schedule's), set on the
        optimizer and returned as the schedule gave it (for the history)."""
        options = self.options
        schedule = schedules.get(options.lr_schedule.name)
        rate = schedule(
            options.optimizer.learning_rate,
            self.progress.epoch,
            options.epochs,
            options.lr_schedule,
        )
        self.optimizer.learning_rate = rate
        return rate

    def wrap_up(self) -> None:
        """The end of a run that was not stopped: with early stopping, the best weights
        are restored (not when the run paused short of its epochs, a sweep's rung)."""
        options, progress = self.options, self.progress
        paused = progress.epoch < options.epochs and not progress.early_stopped
        if options.early_stopping is not None and not paused:
            self.network.params[...] = self.best_params

    def _fill(self, index: int, out: Array) -> None:
        """Batch ``index``'s rows of x, gathered into ``out`` and standardised there."""
        self.epoch_rows.fill(self.spans[index], out)

    def _steps(self, start: int, should_stop: Callable[[], bool] | None) -> int:
        """Steps from batch ``start`` to the end of the epoch; returns the batches done.

        ``should_stop`` is asked before every batch; a True ends the epoch early. Raises
        NonFiniteOutput if the logits turn NaN / inf.
        """
        batches, forward, update = self.batches, self.network.propagate, self.update
        watch = self.watch.step if self.watch is not None else None
        fill = self._fill if self.epoch_rows.gathers else None
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
            codes, label_scores = self.epoch_rows.codes, self.label_scores
            if label_scores is not None and codes is not None:
                scores = label_scores(z, codes, self.ys)
            else:
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
        if self.val_scores is not None:
            return self.val_scores(self.val_z, self.val_codes, self.val_y, self.val_a)
        return metrics.evaluate(data.task, self.network.loss, self.val_z, self.val_a, self.val_y)

    def _diverged(self, reason: str) -> DivergenceError:
        rate = self.optimizer.learning_rate
        return DivergenceError(
            f"training diverged in epoch {self.progress.epoch + 1}: {reason}. Lower the "
            f"learning rate (now {rate:g}; try {rate / 10:g}) or set clip_norm.",
            ("optimizer", "learning_rate"),
        )
