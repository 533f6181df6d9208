"""A worker keeps its last dataset's arrays and prepared data (app/jobs/data_memo.py):
the next trial on them gets the same objects, and trains exactly as it would have on
data prepared anew."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from app.engine.network import Network
from app.engine.pack import packs
from app.engine.training import Trainer, TrainingOptions
from app.engine.trainingdata import TrainingData
from app.jobs import data_memo

CONFIG = {
    "input_size": 4,
    "layers": [{"units": 8, "activation": "relu"}, {"units": 3, "activation": "softmax"}],
}


@pytest.fixture(autouse=True)
def fresh_memo() -> Iterator[None]:
    data_memo.forget()
    yield
    data_memo.forget()


def rows(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(120, 4)).astype(np.float32) * 3 + 1
    return x, rng.integers(0, 3, size=120)


def options(**changes: object) -> TrainingOptions:
    base = {
        "epochs": 6,
        "batch_size": 16,
        "validation_split": 0.25,
        "seed": 3,
        "optimizer": {"name": "adam", "learning_rate": 0.01},
    }
    return TrainingOptions.from_dict({**base, **changes})


def network() -> Network:
    return Network.from_config(CONFIG)


def test_arrays_of_a_blob_are_loaded_once_and_kept_read_only() -> None:
    loads: list[str] = []

    def load(name: str) -> np.ndarray:
        loads.append(name)
        return np.arange(6, dtype=np.float32)

    first = data_memo.array("a" * 64, lambda: load("a"))
    assert data_memo.array("a" * 64, lambda: load("again")) is first
    assert loads == ["a"] and not first.flags.writeable
    data_memo.array("b" * 64, lambda: load("b"))
    data_memo.array("c" * 64, lambda: load("c"))  # a third blob: the older two go
    data_memo.array("a" * 64, lambda: load("a"))
    assert loads == ["a", "b", "c", "a"]


def test_a_new_run_on_the_same_arrays_and_arguments_reuses_the_prepared_data() -> None:
    x, y = rows()
    prepare = data_memo.preparer("x" * 64, "y" * 64)
    first = Trainer(network(), x, y, options(), prepare=prepare)
    second = Trainer(network(), x, y, options(optimizer={"name": "sgd"}), prepare=prepare)
    assert second.data is first.data
    assert first.data.fingerprint() == second.data.fingerprint()
    for changed in (options(seed=4), options(validation_split=0.5), options(standardize=False)):
        assert Trainer(network(), x, y, changed, prepare=prepare).data is not first.data
    other = data_memo.preparer("z" * 64, "y" * 64)  # another x blob
    assert Trainer(network(), x, y, options(), prepare=other).data is not first.data


def test_training_on_kept_data_is_bit_identical_to_training_on_fresh_data() -> None:
    x, y = rows()
    prepare = data_memo.preparer("x" * 64, "y" * 64)
    Trainer(network(), x, y, options(), prepare=prepare).run()  # prepares and keeps
    kept = Trainer(network(), x, y, options(), prepare=prepare)
    fresh = Trainer(network(), x, y, options())
    assert kept.data is not fresh.data
    kept.run()
    fresh.run()
    assert np.array_equal(kept.network.params, fresh.network.params)
    timing = ("seconds", "samples_per_second")
    assert [{k: v for k, v in e.items() if k not in timing} for e in kept.history] == [
        {k: v for k, v in e.items() if k not in timing} for e in fresh.history
    ]


def test_a_resumed_run_reuses_the_data_its_checkpoint_was_made_on() -> None:
    x, y = rows()
    prepare = data_memo.preparer("x" * 64, "y" * 64)
    trainer = Trainer(network(), x, y, options(), prepare=prepare)
    trainer.loop.stop_at = 3
    trainer.run()
    checkpoint = trainer.checkpoint()
    resumed = Trainer.resume(checkpoint, x, y, history=trainer.history, prepare=prepare)
    assert resumed.data is trainer.data
    resumed.run()
    straight = Trainer(network(), x, y, options())
    straight.run()
    assert np.array_equal(resumed.network.params, straight.network.params)


def test_different_labels_are_never_served_the_kept_data() -> None:
    x, y = rows()
    prepare = data_memo.preparer("x" * 64, "y" * 64)
    kept = Trainer(network(), x, y, options(), prepare=prepare).data
    data = prepare(
        network(),
        x,
        y,
        validation_split=0.25,
        seed=3,
        classes=[2, 1, 0],  # another label order (an initial model's)
        standardizer=kept.standardizer,
    )
    assert data is not kept and data.classes == [2, 1, 0]
    validation = prepare(network(), x, y, validation_split=0.0, seed=3, validation=(x[:10], y[:10]))
    assert isinstance(validation, TrainingData) and validation is not kept


def test_continuations_resumed_on_a_cold_memo_share_their_data_and_pack() -> None:
    """A halving rung's continuations, resumed by a worker that kept nothing (restarted,
    or last on another dataset), get one prepared data, so the engine packs them; a new
    run is not served data prepared for a resumed one."""
    x, y = rows()
    prepare = data_memo.preparer("x" * 64, "y" * 64)
    checkpoints = []
    for rate in (0.01, 0.03):
        trainer = Trainer(
            network(),
            x,
            y,
            options(diagnostics=False, optimizer={"name": "adam", "learning_rate": rate}),
            prepare=prepare,
        )
        trainer.loop.stop_at = 2
        trainer.run()
        checkpoints.append((trainer.checkpoint(), trainer.history))
    data_memo.forget()
    resumed = [
        Trainer.resume(checkpoint, x, y, history=history, prepare=prepare)
        for checkpoint, history in checkpoints
    ]
    assert resumed[0].data is resumed[1].data
    assert packs(resumed) == [[0, 1]]
    fresh = Trainer(network(), x, y, options(), prepare=prepare)
    assert fresh.data is not resumed[0].data
