"""Training without copies of x: a split by index, standardisation per gathered batch,
block-wise statistics and fingerprints, and x as a read-only memory map."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.engine import loop, preprocessing, splitting
from app.engine.datasets import generate
from app.engine.errors import DataError
from app.engine.network import Network
from app.engine.preprocessing import Standardizer, check_features
from app.engine.training import OptimizerOptions, Trainer, TrainingOptions
from app.engine.trainingdata import TrainingData

F32 = np.dtype(np.float32)


def spiral_net() -> Network:
    return Network(
        2, [{"units": 12, "activation": "tanh"}, {"units": 3, "activation": "softmax"}], seed=3
    )


def spiral_options(optimizer: str = "sgd", **overrides: Any) -> TrainingOptions:
    settings: dict[str, Any] = {
        "epochs": 4,
        "batch_size": 16,
        "validation_split": 0.2,
        "optimizer": OptimizerOptions(name=optimizer, learning_rate=0.05),
        "seed": 7,
    }
    settings.update(overrides)
    return TrainingOptions(**settings)


def scaled_spirals() -> tuple[np.ndarray, np.ndarray]:
    x, y = generate("spirals", n_samples=150, classes=3, noise=0.2, seed=1)
    return x * np.array([30.0, 0.1], dtype=np.float32) + 5.0, y


def test_validation_rows_are_the_ones_the_split_chose_before() -> None:
    """Same seed, same rows: the split by index keeps the rows of the earlier copies."""
    y = np.array([0, 1, 2] * 8)[:23]
    train, val = splitting.split(23, 0.3, y.astype(np.intp), 11)
    assert val.tolist() == [3, 7, 8, 9, 16, 17, 21]  # pinned: unchanged for seed 11
    assert train.tolist() == sorted(set(range(23)) - set(val.tolist()))
    x = np.arange(46, dtype=np.float32).reshape(23, 2)
    net = Network(2, [{"units": 3, "activation": "softmax"}])
    data = TrainingData.prepare(net, x, y, validation_split=0.3, seed=11)
    assert data.x is x and data.x_val is x and data.y_val is data.y
    assert data.val_rows is not None and data.train_rows is not None
    assert data.val_rows.tolist() == val.tolist() and data.train_rows.tolist() == train.tolist()
    assert (data.train_count, data.val_count) == (16, 7)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_per_batch_standardisation_equals_standardising_the_whole_array(optimizer: str) -> None:
    """Bit-identical weights and metrics: standardising each gathered batch computes the
    same float32 expression as standardising x once up front."""
    x, y = scaled_spirals()
    train, _ = splitting.split(150, 0.2, y.astype(np.intp), 7)
    stats = Standardizer.fit(x[train])
    whole = stats.transform(x)
    per_batch = Trainer(spiral_net(), x, y, spiral_options(optimizer)).run()
    up_front = Trainer(spiral_net(), whole, y, spiral_options(optimizer, standardize=False)).run()
    np.testing.assert_array_equal(per_batch.model.network.params, up_front.model.network.params)
    for mine, theirs in zip(per_batch.history, up_front.history, strict=True):
        assert mine["loss"] == theirs["loss"] and mine["val_loss"] == theirs["val_loss"]
    assert per_batch.model.x_mean is not None
    np.testing.assert_array_equal(per_batch.model.x_mean, stats.mean)


def test_validation_in_blocks_matches_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = scaled_spirals()
    options = spiral_options(epochs=2)
    one = Trainer(spiral_net(), x, y, options).run()
    monkeypatch.setattr(loop, "EVAL_ROWS", 7)  # 30 validation rows: 5 blocks, a short one
    blocks = Trainer(spiral_net(), x, y, options).run()
    for a, b in zip(one.history, blocks.history, strict=True):
        assert a["val_accuracy"] == b["val_accuracy"]
        np.testing.assert_allclose(a["val_loss"], b["val_loss"], rtol=1e-6)


def test_standardizer_fits_gathered_rows_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((101, 3)) * [1.0, 50.0, 0.0] + [3.0, -7.0, 2.0]).astype(np.float32)
    rows = np.flatnonzero(rng.random(101) < 0.7)
    reference = Standardizer.fit(x[rows])
    monkeypatch.setattr(preprocessing, "FIT_BLOCK_ELEMENTS", 3 * 8)  # 8 rows a block
    blocked = Standardizer.fit(x, rows)
    np.testing.assert_allclose(blocked.mean, reference.mean, rtol=1e-6)
    np.testing.assert_allclose(blocked.std, reference.std, rtol=1e-6)
    assert blocked.std[2] == 1.0  # the constant feature
    np.testing.assert_allclose(blocked.mean, x[rows].mean(axis=0), rtol=1e-5)


def test_a_bad_cell_is_found_in_a_later_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preprocessing, "FIT_BLOCK_ELEMENTS", 4)  # 2 rows a block
    x = np.zeros((7, 2), dtype=np.float32)
    x[5, 1] = np.nan
    with pytest.raises(DataError) as info:
        check_features(x, 2, F32)
    assert info.value.loc == ("x", 5, 1)


def test_the_fingerprint_hashes_the_standardised_split_as_before() -> None:
    """The digest is the one of the standardised copies the engine used to make, so
    checkpoints written before training by index still resume."""
    x, y = scaled_spirals()
    trainer = Trainer(spiral_net(), x, y, spiral_options())
    data = trainer.data
    assert data.standardizer is not None and data.train_rows is not None
    assert data.val_rows is not None
    digest = hashlib.sha256()
    for rows in (data.train_rows, data.val_rows):
        part = data.standardizer.transform(x[rows])
        digest.update(repr(part.shape).encode())
        digest.update(part.tobytes())
        digest.update(repr(data.y[rows].shape).encode())
        digest.update(data.y[rows].tobytes())
    assert data.fingerprint() == digest.hexdigest()


def test_training_from_a_read_only_memory_map(tmp_path: Path) -> None:
    """x as a worker opens it: np.load(mmap_mode="r"). Nothing copies it whole, nothing
    writes it, and a run resumed from a checkpoint on the same map ends bit-identical."""
    x, y = scaled_spirals()
    path = tmp_path / "x.npy"
    np.save(path, x)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    mapped = np.load(path, mmap_mode="r")
    assert not mapped.flags.writeable
    options = spiral_options("adam", epochs=3)
    trainer = Trainer(spiral_net(), mapped, y, options)
    assert np.shares_memory(trainer.data.x, mapped) and trainer.loop.xs is None
    batch_rows = {batch[0].shape[0] for batch in trainer.loop.batches}
    assert max(batch_rows) == 16
    stops = iter([False] * 9 + [True])
    trainer.run(should_stop=lambda: next(stops))
    blob = trainer.checkpoint()
    resumed = Trainer.resume(blob, np.load(path, mmap_mode="r"), y).run()
    straight = Trainer(spiral_net(), x, y, options).run()
    np.testing.assert_array_equal(resumed.model.network.params, straight.model.network.params)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    np.testing.assert_array_equal(mapped, x)
