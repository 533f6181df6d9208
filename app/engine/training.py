"""Training a network: the Trainer, which prepares the data, runs the epoch loop and
hands out results and checkpoints.

``Trainer(network, x, y, options).run()`` trains ``network`` in place. The data are
checked, encoded, split and standardised (``trainingdata``); the epochs run in
``loop.EpochLoop`` — per batch: forward and backward (``network``), then L2, clipping and
the optimizer's step (``optimizers``); per epoch: metrics, history, the best weights and
early stopping. ``should_stop`` is asked before every batch; ``on_epoch`` is called at
each epoch boundary. ``checkpoint()`` captures the complete state at any point between
batches, and a run resumed from it ends with bit-identical weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import checkpoint as checkpoints
from app.engine import labels
from app.engine.epochrows import SHUFFLE_RULE
from app.engine.errors import ConfigError, DataError, ExportFormatError
from app.engine.loop import EpochLoop, Progress
from app.engine.model import Model
from app.engine.network import Network
from app.engine.options import (
    EarlyStoppingOptions,
    OptimizerOptions,
    ScheduleOptions,
    TrainingOptions,
)
from app.engine.preprocessing import Standardizer
from app.engine.trainingdata import TrainingData

__all__ = [
    "EarlyStoppingOptions",
    "OptimizerOptions",
    "ScheduleOptions",
    "Trainer",
    "TrainingOptions",
    "TrainingResult",
]

# How a Trainer gets its TrainingData: ``TrainingData.prepare`` (the default), or a
# caller's function with the same signature that may hand back data it prepared before
# for the same arrays and arguments (a worker's trials on one dataset).
DataPreparer = Callable[..., TrainingData]

Array = npt.NDArray[np.floating[Any]]


@dataclass
class TrainingResult:
    """The outcome of ``Trainer.run``.

    model: final weights, or the best-so-far weights when early stopping is configured
    or the run was stopped. epochs_run: epochs completed in total (resumed ones included).
    """

    model: Model
    history: list[dict[str, Any]]
    stopped: bool
    early_stopped: bool
    epochs_run: int


class Trainer:
    """Trains a network on x (m, n[0]) / y (labels or targets, see ``labels``).

    validation: an explicit (x, y) validation set, used instead of validation_split.
    init_model: start from this model's weights (its shapes must match the network) and
    keep its standardisation and classes.
    prepare: makes the TrainingData (see ``DataPreparer``).
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
        prepare: DataPreparer = TrainingData.prepare,
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
        data = prepare(
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

    def _start(
        self,
        network: Network,
        options: TrainingOptions,
        data: TrainingData,
        shuffle_rule: str = SHUFFLE_RULE,
    ) -> None:
        self.network, self.options, self.data = network, options, data
        self.loop = EpochLoop(network, data, options, shuffle_rule)
        self._fingerprint: str | None = None

    @property
    def progress(self) -> Progress:
        """Where the run stands (see ``loop.Progress``)."""
        return self.loop.progress

    @property
    def best_params(self) -> Array:
        """The flat parameters of the best epoch so far (the initial ones before any)."""
        return self.loop.best_params

    @property
    def epoch(self) -> int:
        """Epochs completed."""
        return self.progress.epoch

    @property
    def history(self) -> list[dict[str, Any]]:
        """One entry per completed epoch (keys: see ``loop.EpochLoop._end_epoch``); a
        resumed trainer has those handed to ``resume`` (none: only the epochs it ran)."""
        return self.progress.history

    @property
    def samples_trained(self) -> int:
        """Training rows processed so far, resumed runs included."""
        return self.progress.samples_trained

    # --- the loop -----------------------------------------------------------------------

    def run(
        self,
        *,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> TrainingResult:
        """Train until the epochs are done, early stopping fires or ``should_stop()``.

        Raises DivergenceError if the loss, the outputs or the weights become non-finite.
        """
        stopped = self.loop.run(on_epoch, should_stop)
        return self._result(stopped)

    def finish_run(self, *, stopped: bool) -> TrainingResult:
        """What ``run`` returns, for a run whose epochs were driven from outside (a
        ``pack.Pack``): ``stopped`` when its ``should_stop`` ended it."""
        if not stopped:
            self.loop.wrap_up()
        return self._result(stopped)

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

    def best_entry(self) -> dict[str, Any] | None:
        """The history entry of the best epoch so far (the one :meth:`best_model` holds)."""
        return self.progress.best_entry

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
        counters, optimizer_arrays = self.loop.optimizer.state()
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
                shuffle_rule=self.loop.epoch_rows.rule,
            )
        )

    @classmethod
    def resume(
        cls,
        checkpoint: bytes,
        x: Any,
        y: Any,
        *,
        validation: tuple[Any, Any] | None = None,
        history: list[dict[str, Any]] | None = None,
        prepare: DataPreparer = TrainingData.prepare,
    ) -> Trainer:
        """A trainer in exactly the state ``checkpoint()`` captured, on the same data.

        history: the entries of the epochs before the checkpoint (one per epoch, as
        ``history`` had them), kept apart since checkpoints do not carry them; without it
        the resumed trainer's history starts at the checkpoint's epoch.
        ExportFormatError for a damaged checkpoint; DataError if x / y (or validation)
        are not the data the checkpoint was made with, or the history does not fit.
        """
        snap = checkpoints.read(checkpoint)
        # A version 1 checkpoint carries its own history: used when the given one is short.
        embedded = len(snap.progress.history) == snap.progress.epoch > 0
        if history is not None and not (embedded and len(history) != snap.progress.epoch):
            if len(history) != snap.progress.epoch:
                raise DataError(
                    f"the history has {len(history)} epochs, the checkpoint {snap.progress.epoch}",
                    ("history",),
                )
            snap.progress.history = [dict(entry) for entry in history]
        data = prepare(
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
        # Its epochs keep the order of the rule it was trained by (an older one too).
        trainer._start(snap.network, snap.options, data, snap.shuffle_rule)
        trainer._fingerprint = snap.data_sha256
        trainer.loop.progress = snap.progress
        if snap.progress.batches_done >= len(trainer.loop.batches):
            raise ExportFormatError(
                "the checkpoint's batch position does not fit the data", ("checkpoint",)
            )
        optimizer = trainer.loop.optimizer
        _, like = optimizer.state()
        optimizer.load_state(
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
