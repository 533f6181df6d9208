"""Determinism and checkpoint / resume: bit-identical weights, whatever the interruption."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest

from app.engine.datasets import generate
from app.engine.epochrows import SEEDED_RULE, SHUFFLE_RULE
from app.engine.errors import DataError, ExportFormatError
from app.engine.network import Network
from app.engine.training import (
    EarlyStoppingOptions,
    OptimizerOptions,
    ScheduleOptions,
    Trainer,
    TrainingOptions,
)

TIMING = ("seconds", "samples_per_second")
EPOCHS = 12


def setup(
    optimizer: str = "adam", **overrides: Any
) -> tuple[Network, np.ndarray, np.ndarray, TrainingOptions]:
    x, y = generate("spirals", n_samples=150, classes=3, noise=0.2, seed=1)
    net = Network(
        2, [{"units": 12, "activation": "tanh"}, {"units": 3, "activation": "softmax"}], seed=3
    )
    settings: dict[str, Any] = {
        "epochs": EPOCHS,
        "batch_size": 16,  # 150 rows with a 0.2 split: 120 rows, a short last batch
        "optimizer": OptimizerOptions(name=optimizer, learning_rate=0.05, nesterov=True),
        "validation_split": 0.2,
        "l2": 1e-3,
        "clip_norm": 5.0,
        "lr_schedule": ScheduleOptions(name="cosine"),
        "seed": 7,
    }
    settings.update(overrides)
    return net, x, y, TrainingOptions(**settings)


def strip(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in entry.items() if k not in TIMING} for entry in history]


def test_same_seed_same_bits() -> None:
    runs = []
    for _ in range(2):
        net, x, y, options = setup()
        result = Trainer(net, x, y, options).run()
        runs.append((net.params.copy(), strip(result.history)))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    net, x, y, options = setup(seed=8)
    Trainer(net, x, y, options).run()
    assert not np.array_equal(net.params, runs[0][0])


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_resume_from_any_epoch_is_bit_identical(optimizer: str) -> None:
    net, x, y, options = setup(optimizer)
    trainer = Trainer(net, x, y, options)
    checkpoints: dict[int, bytes] = {}
    result = trainer.run(
        on_epoch=lambda e: checkpoints.__setitem__(int(e["epoch"]), trainer.checkpoint())
    )
    assert sorted(checkpoints) == list(range(1, EPOCHS + 1))
    for epoch in (1, 5, EPOCHS - 1):
        resumed = Trainer.resume(checkpoints[epoch], x, y, history=result.history[:epoch])
        assert resumed.epoch == epoch
        again = resumed.run()
        assert np.array_equal(resumed.network.params, net.params), f"epoch {epoch}"
        assert strip(again.history) == strip(result.history)
        assert np.array_equal(again.model.network.params, result.model.network.params)


def test_resume_mid_epoch_is_bit_identical() -> None:
    net, x, y, options = setup()
    Trainer(net, x, y, options).run()
    net2, _, _, _ = setup()
    trainer = Trainer(net2, x, y, options)
    asked = 0

    def stop_in_epoch_4() -> bool:
        nonlocal asked
        asked += 1
        return asked == 3 * 8 + 3  # 8 batches per epoch: stops before the 3rd batch of epoch 4

    first = trainer.run(should_stop=stop_in_epoch_4)
    assert first.stopped and trainer.epoch == 3 and trainer.progress.batches_done == 2
    resumed = Trainer.resume(trainer.checkpoint(), x, y)
    resumed.run()
    assert np.array_equal(resumed.network.params, net.params)
    assert resumed.samples_trained == EPOCHS * 120
    trainer.run()  # the stopped trainer itself can also carry on
    assert np.array_equal(net2.params, net.params)


def test_resume_after_early_stop_gives_the_same_model() -> None:
    stopping = EarlyStoppingOptions(patience=2, min_delta=0.05)
    net, x, y, options = setup(early_stopping=stopping, epochs=60)
    trainer = Trainer(net, x, y, options)
    saved: list[bytes] = []
    result = trainer.run(on_epoch=lambda e: saved.append(trainer.checkpoint()))
    assert result.early_stopped
    resumed = Trainer.resume(saved[-1], x, y)
    again = resumed.run()
    assert again.early_stopped and again.epochs_run == result.epochs_run
    assert np.array_equal(resumed.network.params, net.params)
    resumed_early = Trainer.resume(saved[0], x, y)
    resumed_early.run()
    assert np.array_equal(resumed_early.network.params, net.params)


def test_checkpoint_is_npz_and_json_without_pickle() -> None:
    net, x, y, options = setup()
    trainer = Trainer(net, x, y, options)
    trainer.run()
    with np.load(io.BytesIO(trainer.checkpoint()), allow_pickle=False) as archive:
        names = set(archive.files)
        assert {
            "params",
            "best_params",
            "optimizer.m",
            "optimizer.v",
            "x_mean",
            "x_std",
            "state.json",
        } <= names
        assert all(archive[name].dtype != object for name in names)


def test_resume_refuses_other_data_and_damaged_checkpoints() -> None:
    net, x, y, options = setup(epochs=2)
    trainer = Trainer(net, x, y, options)
    trainer.run()
    blob = trainer.checkpoint()
    with pytest.raises(DataError):
        Trainer.resume(blob, x + 1, y)
    for damaged in (b"", b"junk", blob[: len(blob) // 2]):
        with pytest.raises(ExportFormatError):
            Trainer.resume(damaged, x, y)
    buffer = io.BytesIO()
    np.savez(buffer, params=np.zeros(3))
    with pytest.raises(ExportFormatError):
        Trainer.resume(buffer.getvalue(), x, y)


def with_shuffle_rule(blob: bytes, rule: Any) -> bytes:
    """The checkpoint ``blob`` with its state.json naming another shuffle rule (None: no
    ``rng`` entry at all)."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    document = json.loads(arrays["state.json"].tobytes())
    assert document["rng"]["shuffle"] == SHUFFLE_RULE
    if rule is None:
        del document["rng"]
    else:
        document["rng"]["shuffle"] = rule
    arrays["state.json"] = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_a_checkpoint_resumes_with_the_shuffle_rule_it_names() -> None:
    """A checkpoint of the rule before the current one (written before the upgrade)
    finishes as an uninterrupted run of that rule would: bit-identical weights; the rule
    is carried on in its later checkpoints. An unknown rule is refused."""
    net, x, y, options = setup()
    old = Trainer(net, x, y, options)
    old._start(net, options, old.data, SEEDED_RULE)  # a trainer of the earlier rule
    saved: dict[int, bytes] = {}
    old.run(on_epoch=lambda e: saved.__setitem__(int(e["epoch"]), old.checkpoint()))
    net_now, _, _, _ = setup()
    Trainer(net_now, x, y, options).run()
    assert not np.array_equal(net_now.params, net.params)  # the two rules' orders differ
    resumed = Trainer.resume(saved[4], x, y)
    assert resumed.loop.epoch_rows.rule == SEEDED_RULE
    resumed.run()
    assert np.array_equal(resumed.network.params, net.params)
    with np.load(io.BytesIO(resumed.checkpoint()), allow_pickle=False) as archive:
        assert json.loads(archive["state.json"].tobytes())["rng"]["shuffle"] == SEEDED_RULE
    current = Trainer(setup()[0], x, y, options)
    current.run()
    blob = current.checkpoint()
    assert Trainer.resume(blob, x, y).loop.epoch_rows.rule == SHUFFLE_RULE
    assert Trainer.resume(with_shuffle_rule(blob, None), x, y).loop.epoch_rows.rule == SEEDED_RULE
    for unknown in ("numpy shuffle(rows)", 7):
        with pytest.raises(ExportFormatError, match="unknown rule"):
            Trainer.resume(with_shuffle_rule(blob, unknown), x, y)
