"""The fit loop: epochs of minibatch steps, metrics, early stopping, callbacks, checkpoints.

``Trainer(network, x, y, options).run()`` trains ``network`` in place. Per epoch: the
rows are shuffled (a function of seed and epoch), the learning rate is set from the
schedule, every batch runs forward → backward → L2 / clipping → optimizer step (see
``update`` for the exact penalty and clipping formulas), and the epoch's metrics come
from the logits the steps produced plus one forward pass over the validation rows.

The best score so far (validation loss when there is validation data, else training
loss) and its weights are always tracked; with early stopping the run ends with those
weights restored. ``should_stop`` is asked before every batch; ``on_epoch`` is called at
each epoch boundary. ``checkpoint()`` captures the complete state at any point between
batches, and a run resumed from it ends with bit-identical weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import activations, labels, metrics, optimizers, schedules
from app.engine import checkpoint as checkpoints
from app.engine.errors import ConfigError, DataError, DivergenceError, ExportFormatError
from app.engine.loop import EpochLoop, NonFiniteOutput
from app.engine.model import Model
from app.engine.network import Network
from app.engine.options import (
    EarlyStoppingOptions,
    OptimizerOptions,
    ScheduleOptions,
    TrainingOptions,
)
from app.engine.preprocessing import Standardizer
from app.engine.progress import Progress
from app.engine.trainingdata import TrainingData
from app.engine.update import NonFiniteGradient, make_update

__all__ = [
    "EarlyStoppingOptions",
    "OptimizerOptions",
    "ScheduleOptions",
    "Trainer",
    "TrainingOptions",
    "TrainingResult",
]

Array = npt.NDArray[np.floating[Any]]
EVAL_ROWS = 8192  # validation rows per forward pass, to bound memory


@dataclass
class TrainingResult:
    """The outcome of ``Trainer.run``.

    model: final weights, or the best-so-far weights when early stopping is configured
    or the run was stopped. epochs_run: epochs completed in total (resumed ones included).
    """

    model: Model
    history: list[dict[str, float]]
    stopped: bool
    early_stopped: bool
    epochs_run: int


class Trainer:
    """Trains a network on x (m, n[0]) / y (labels or targets, see ``labels``).

    validation: an explicit (x, y) validation set, used instead of validation_split.
    init_model: start from this model's weights (its shapes must match the network) and
    keep its standardisation and classes.
    """

    def __init__(
        self,
        network: Network,
        x: Any,
        y: Any,
        options: TrainingOptions,
        *,
        validation: tuple[Any, Any] | None = None,
        init_model: Model | None = None,
    ) -> None:
        if not isinstance(options, TrainingOptions):
            raise ConfigError("options must be TrainingOptions", ())
        classes, stats, fit = None, None, options.standardize
        if init_model is not None:
            _adopt_weights(network, init_model)
            classes, fit = init_model.classes, False
            if init_model.x_mean is not None and init_model.x_std is not None:
                stats = Standardizer(
                    init_model.x_mean.astype(network.dtype), init_model.x_std.astype(network.dtype)
                )
        data = TrainingData.prepare(
            network,
            x,
            y,
            validation_split=options.validation_split,
            seed=options.seed,
            validation=validation,
            classes=classes,
            standardizer=stats,
            fit_standardizer=fit,
        )
        self._start(network, options, data)

    def _start(self, network: Network, options: TrainingOptions, data: TrainingData) -> None:
        self.network, self.options, self.data = network, options, data
        self.grads = np.zeros_like(network.params)
        self.optimizer = optimizers.get(options.optimizer.name)(network.params, options.optimizer)
        self.loop = EpochLoop(
            network, data.x, data.y, options.batch_size, options.shuffle, options.seed, self.grads
        )
        self.progress = Progress()
        self.best_params = network.params.copy()
        self._arranged: int | None = None  # the epoch whose row order the loop holds
        self._fingerprint: str | None = None
        self._update = make_update(
            network, self.grads, self.optimizer, options.l2, options.clip_norm
        )

    @property
    def epoch(self) -> int:
        """Epochs completed."""
        return self.progress.epoch

    @property
    def history(self) -> list[dict[str, float]]:
        """One entry per completed epoch (see ``_end_epoch`` for the keys)."""
        return self.progress.history

    @property
    def samples_trained(self) -> int:
        """Training rows processed so far, resumed runs included."""
        return self.progress.samples_trained

    # --- the loop -----------------------------------------------------------------------

    def run(
        self,
        *,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> TrainingResult:
        """Train until the epochs are done, early stopping fires or ``should_stop()``.

        Raises DivergenceError if the loss, the outputs or the weights become non-finite.
        """
        options, progress = self.options, self.progress
        schedule = schedules.get(options.lr_schedule.name)
        while progress.epoch < options.epochs and not progress.early_stopped:
            rate = schedule(
                options.optimizer.learning_rate, progress.epoch, options.epochs, options.lr_schedule
            )
            self.optimizer.learning_rate = rate
            if self._arranged != progress.epoch:
                self.loop.arrange(progress.epoch)
                self._arranged = progress.epoch
            start, started = progress.batches_done, time.perf_counter()
            try:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    done = self.loop.run(start, self._update, should_stop)
            except (NonFiniteOutput, NonFiniteGradient):
                raise self._diverged("the outputs or gradients became NaN or infinite") from None
            progress.epoch_seconds += time.perf_counter() - started
            progress.samples_trained += self.loop.rows(done) - self.loop.rows(start)
            progress.batches_done = done
            if done < len(self.loop.batches):
                return self._result(stopped=True)
            entry = self._end_epoch(rate)
            if on_epoch is not None:
                on_epoch(dict(entry))
        if options.early_stopping is not None:
            self.network.params[...] = self.best_params
        return self._result(stopped=False)

    def _end_epoch(self, rate: float) -> dict[str, float]:
        """Metrics of the finished epoch; history entry keys: epoch, loss, accuracy or
        mae + r2, the same with val_ when validating, learning_rate, seconds and
        samples_per_second."""
        started = time.perf_counter()
        data, network = self.data, self.network
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            z = self.loop.logits
            if data.task == "multiclass":
                # The cross-entropy value reads z only and argmax(softmax(z)) = argmax(z):
                # the epoch's softmax, the dearest part of these metrics, is not needed.
                a = z
            else:
                a = np.empty_like(z)
                activations.ACTIVATIONS[network.activations[-1]](z, a)
            scores = metrics.evaluate(data.task, network.loss, z, a, self.loop.ys)
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

    # --- results ------------------------------------------------------------------------

    def _model(self, params: Array) -> Model:
        network = self.network.copy()
        network.params[...] = params
        stats = self.data.standardizer
        if stats is None:
            return Model(network, self.data.task, self.data.classes)
        return Model(
            network, self.data.task, self.data.classes, stats.mean.copy(), stats.std.copy()
        )

    def best_entry(self) -> dict[str, float] | None:
        """The history entry of the best epoch so far (the one :meth:`best_model` holds)."""
        best = self.progress.best_epoch
        return next((e for e in self.progress.history if e["epoch"] == best), None)

    def best_model(self) -> Model:
        """The best-so-far weights (current ones before the first epoch ends) as a Model."""
        started = self.progress.best_score is not None
        return self._model(self.best_params if started else self.network.params)

    def _result(self, stopped: bool) -> TrainingResult:
        use_best = stopped or self.options.early_stopping is not None
        model = self.best_model() if use_best else self._model(self.network.params)
        history = [dict(e) for e in self.progress.history]
        return TrainingResult(
            model, history, stopped, self.progress.early_stopped, self.progress.epoch
        )

    # --- checkpoints --------------------------------------------------------------------

    def checkpoint(self) -> bytes:
        """The complete training state as npz bytes (see ``checkpoint`` and ``resume``)."""
        if self._fingerprint is None:
            self._fingerprint = self.data.fingerprint()
        counters, optimizer_arrays = self.optimizer.state()
        done = self.progress.batches_done
        return checkpoints.write(
            checkpoints.Snapshot(
                network=self.network,
                options=self.options,
                task=self.data.task,
                classes=self.data.classes,
                standardizer=self.data.standardizer,
                data_sha256=self._fingerprint,
                progress=self.progress,
                optimizer_counters=counters,
                optimizer_arrays=optimizer_arrays,
                best_params=self.best_params,
                logits=self.loop.logits[: self.loop.rows(done)] if done else None,
            )
        )

    @classmethod
    def resume(
        cls, checkpoint: bytes, x: Any, y: Any, *, validation: tuple[Any, Any] | None = None
    ) -> Trainer:
        """A trainer in exactly the state ``checkpoint()`` captured, on the same data.

        ExportFormatError for a damaged checkpoint; DataError if x / y (or validation)
        are not the data the checkpoint was made with.
        """
        snap = checkpoints.read(checkpoint)
        data = TrainingData.prepare(
            snap.network,
            x,
            y,
            validation_split=snap.options.validation_split,
            seed=snap.options.seed,
            validation=validation,
            classes=snap.classes,
            standardizer=snap.standardizer,
        )
        if data.fingerprint() != snap.data_sha256:
            raise DataError("x / y differ from the data this checkpoint was trained on", ("x",))
        trainer = cls.__new__(cls)
        trainer._start(snap.network, snap.options, data)
        trainer._fingerprint = snap.data_sha256
        trainer.progress = snap.progress
        if snap.progress.batches_done >= len(trainer.loop.batches):
            raise ExportFormatError(
                "the checkpoint's batch position does not fit the data", ("checkpoint",)
            )
        _, like = trainer.optimizer.state()
        trainer.optimizer.load_state(
            snap.optimizer_counters,
            {name: checkpoints.require(snap.optimizer_arrays, name, a) for name, a in like.items()},
        )
        trainer.best_params[...] = snap.best_params
        if snap.progress.batches_done:
            rows = trainer.loop.rows(snap.progress.batches_done)
            stored = {"logits": snap.logits} if snap.logits is not None else {}
            trainer.loop.logits[:rows] = checkpoints.require(
                stored, "logits", trainer.loop.logits[:rows]
            )
        return trainer


def _adopt_weights(network: Network, model: Model) -> None:
    """Copy an initial model's weights into ``network``; ConfigError if they do not fit."""
    mine = [w.shape for w in network.weights]
    theirs = [w.shape for w in model.network.weights]
    if mine != theirs or network.input_size != model.network.input_size:
        raise ConfigError(
            f"init_model has layer shapes {theirs}, the network needs {mine}", ("init_model",)
        )
    if labels.task_of(network.loss) != model.task:
        raise ConfigError(
            f"init_model is a {model.task} model but the network is trained for "
            f"{labels.task_of(network.loss)}",
            ("init_model",),
        )
    network.params[...] = model.network.params
