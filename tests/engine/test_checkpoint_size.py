"""Checkpoints hold the training state only: the same size at epoch 2 and at epoch 200,
no history inside, and the history handed back to ``Trainer.resume`` must fit."""

from __future__ import annotations

import io

import numpy as np
import pytest

from app.engine import npzio
from app.engine.errors import DataError
from app.engine.network import Network
from app.engine.training import Trainer, TrainingOptions


def _trainer(epochs: int) -> tuple[Trainer, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    layers = [{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]
    options = TrainingOptions.from_dict({"epochs": epochs, "batch_size": 32, "seed": 1})
    return Trainer(Network(2, layers, seed=0), x, y, options), x, y


def test_the_checkpoint_does_not_grow_with_the_epochs() -> None:
    trainer, _, _ = _trainer(200)
    sizes: dict[int, int] = {}

    def on_epoch(_entry: object) -> None:
        if trainer.epoch in (2, 200):
            sizes[trainer.epoch] = len(trainer.checkpoint())

    trainer.run(on_epoch=on_epoch)

    assert len(trainer.history) == 200
    # Equal but for the digits of a few numbers (the best epoch's metrics).
    assert abs(sizes[200] - sizes[2]) < 64
    with np.load(io.BytesIO(trainer.checkpoint()), allow_pickle=False) as archive:
        document = npzio.get_json(archive["state.json"], "state.json")
    assert "history" not in document["progress"]
    assert document["progress"]["best_entry"]["epoch"] == trainer.progress.best_epoch


def test_resume_takes_the_history_of_the_epochs_before_the_checkpoint() -> None:
    trainer, x, y = _trainer(6)
    saved: dict[int, bytes] = {}
    result = trainer.run(on_epoch=lambda _e: saved.setdefault(trainer.epoch, trainer.checkpoint()))

    with pytest.raises(DataError, match="the history has 2 epochs, the checkpoint 3"):
        Trainer.resume(saved[3], x, y, history=result.history[:2])
    resumed = Trainer.resume(saved[3], x, y, history=result.history[:3])
    assert resumed.best_entry() is not None
    again = resumed.run()
    assert [e["epoch"] for e in again.history] == list(range(1, 7))
    bare = Trainer.resume(saved[3], x, y)  # without it, the history starts at the checkpoint
    assert [e["epoch"] for e in bare.run().history] == [4, 5, 6]
