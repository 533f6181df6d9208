"""The engine's faster ways to the same numbers: the row maximum read back at the argmax,
the label scores of a softmax classifier, and the staged training rows (each checked to
give exactly what the plain computation gives, ties, infinities and NaN included)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from app.engine import activations, epochrows, losses, metrics
from app.engine.network import Network
from app.engine.training import OptimizerOptions, Trainer, TrainingOptions

DTYPES = [np.float32, np.float64]


def logits(m: int, k: int, dtype: type, seed: int = 0) -> np.ndarray:
    """Random logits with exact ties (rounded values) and a few huge ones."""
    rng = np.random.default_rng(seed)
    z = np.round(rng.standard_normal((m, k)) * 4, 1).astype(dtype)
    z[::7, 0] = z[::7, -1]  # the first and last columns tie (the first must win)
    z[3::11] = 1e4 * np.sign(z[3::11])
    return z


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 5, 32, 287, 1024, 1150])
def test_row_max_is_numpys(m: int, dtype: type) -> None:
    z = logits(m, 10, dtype)
    expected = np.max(z, axis=1, keepdims=True)
    np.testing.assert_array_equal(activations.row_max(z), expected)
    np.testing.assert_array_equal(activations.row_max(np.asfortranarray(z)), expected)
    z[m // 2, 3] = np.nan
    z[0, 1] = -np.inf
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(activations.row_max(z), np.max(z, axis=1, keepdims=True))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [2, 64, 128])
def test_softmax_of_a_batch_stays_finite_and_sums_to_one(m: int, dtype: type) -> None:
    """Logits up to half the largest finite value (so that z - max z is finite): no
    overflow, no NaN."""
    z = logits(m, 10, dtype)
    half = np.finfo(dtype).max / 2
    z[1] = [half, -half, 0, 1, 2, 3, 4, 5, 6, 7]
    out = np.empty_like(z)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise"):
        warnings.simplefilter("error")
        activations.softmax(z, out)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert out[1, 0] == 1.0


def one_hot(codes: np.ndarray, k: int, dtype: type) -> np.ndarray:
    return np.eye(k, dtype=dtype)[codes]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 287, 1150])
def test_label_scores_are_what_evaluate_gives(m: int, dtype: type) -> None:
    """Bit for bit, with and without softmax outputs for the accuracy."""
    k = 10
    z = logits(m, k, dtype, seed=m)
    codes = np.random.default_rng(m).integers(0, k, m).astype(np.intp)
    codes[::3] = z[::3].argmax(axis=1)  # a third are right, the rest by chance
    y = one_hot(codes, k, dtype)
    scores = metrics.LabelScores(m, k, np.dtype(dtype))
    expected = metrics.evaluate("multiclass", "categorical_crossentropy", z, z, y)
    assert expected["loss"] == metrics.in_precision(
        losses.categorical_crossentropy(z, z, y), np.dtype(dtype)
    )
    assert scores(z, codes, y) == expected
    a = np.empty_like(z)
    activations.softmax(z, a)
    assert scores(z, codes, y, a) == metrics.evaluate(
        "multiclass", "categorical_crossentropy", z, a, y
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_label_scores_of_non_finite_logits_are_what_evaluate_gives(bad: float) -> None:
    """-inf included: the plain loss is NaN there (0·(-inf)), so it must stay NaN."""
    z = logits(40, 4, np.float32)
    codes = np.arange(40, dtype=np.intp) % 4
    y = one_hot(codes, 4, np.float32)
    z[7, (codes[7] + 1) % 4] = bad
    with np.errstate(invalid="ignore", over="ignore"):
        expected = metrics.evaluate("multiclass", "categorical_crossentropy", z, z, y)
        got = metrics.LabelScores(40, 4, np.dtype(np.float32))(z, codes, y)
    assert got.keys() == expected.keys() and np.isnan(expected["loss"])
    assert np.isnan(got["loss"]) and got["accuracy"] == expected["accuracy"]


def test_one_hot_codes_only_for_one_hot_rows() -> None:
    codes = np.array([2, 0, 1, 2])
    y = one_hot(codes, 3, np.float32)
    np.testing.assert_array_equal(metrics.one_hot_codes(y), codes)
    soft = y.copy()
    soft[1] = [0.5, 0.5, 0.0]
    assert metrics.one_hot_codes(soft) is None
    nudged = y.copy()
    nudged[2, 0] = 1e-30  # still sums to 1 in float32
    assert metrics.one_hot_codes(nudged) is None
    assert metrics.one_hot_codes(np.zeros((2, 3), dtype=np.float32)) is None


def digits_like(m: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 17, (m, 12)).astype(np.float32)
    y = (x[:, :4].sum(axis=1) // 9).astype(np.int64) % 4
    return x, y


def run(x: np.ndarray, y: np.ndarray, **overrides: object) -> tuple[np.ndarray, list[dict]]:
    net = Network(12, [{"units": 8, "activation": "relu"}, {"units": 4, "activation": "softmax"}])
    options = TrainingOptions(
        epochs=3,
        batch_size=32,
        optimizer=OptimizerOptions(name="adam", learning_rate=1e-2),
        validation_split=0.2,
        seed=0,
        **overrides,  # type: ignore[arg-type]
    )
    trainer = Trainer(net, x, y, options)
    result = trainer.run()
    history = [
        {k: v for k, v in e.items() if k != "seconds" and "per_second" not in k}
        for e in result.history
    ]
    return result.model.network.params, history


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("standardize", [True, False])
def test_staged_rows_train_exactly_like_gathered_batches(
    monkeypatch: pytest.MonkeyPatch, shuffle: bool, standardize: bool
) -> None:
    """Staging the training rows once per run changes no number of the run."""
    x, y = digits_like()
    staged = run(x, y, shuffle=shuffle, standardize=standardize)
    monkeypatch.setattr(epochrows, "STAGE_BYTES", 0)
    gathered = run(x, y, shuffle=shuffle, standardize=standardize)
    np.testing.assert_array_equal(staged[0], gathered[0])
    assert staged[1] == gathered[1]


def test_rows_beyond_the_stage_limit_are_gathered_per_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, y = digits_like()
    net = Network(12, [{"units": 4, "activation": "softmax"}])
    options = TrainingOptions(batch_size=32, validation_split=0.2, seed=0)
    rows = Trainer(net, x, y, options).loop.epoch_rows
    assert rows.staged is not None and not rows.gathers
    assert rows.staged.shape == (240, 12)
    monkeypatch.setattr(epochrows, "STAGE_BYTES", 240 * 12 * 4 - 1)
    rows = Trainer(net, x, y, options).loop.epoch_rows
    assert rows.staged is None and rows.gathers and rows.source.shape == (32, 12)


def test_label_scores_leave_the_history_as_evaluate_makes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """End to end: the run's history (training and validation loss and accuracy) is the
    same with the label scores as through ``metrics.evaluate``."""
    x, y = digits_like()
    fast = run(x, y)
    monkeypatch.setattr(metrics, "one_hot_codes", lambda y: None)
    plain = run(x, y)
    np.testing.assert_array_equal(fast[0], plain[0])
    assert fast[1] == plain[1] and {"val_loss", "val_accuracy"} <= fast[1][0].keys()


def test_probability_rows_are_scored_by_evaluate() -> None:
    """Soft targets (rows of class probabilities) have no class numbers."""
    x, y = digits_like()
    soft = np.full((y.shape[0], 4), 0.1, dtype=np.float32)
    soft[np.arange(y.shape[0]), y] = 0.7
    net = Network(12, [{"units": 4, "activation": "softmax"}])
    trainer = Trainer(net, x, soft, TrainingOptions(epochs=2, validation_split=0.2, seed=0))
    assert trainer.loop.label_scores is None and trainer.loop.val_scores is None
    history = trainer.run().history
    assert all(np.isfinite(e["loss"]) and np.isfinite(e["val_loss"]) for e in history)


def test_an_epochs_order_depends_on_the_seed_and_epoch_only() -> None:
    """Arranging epoch 5 straight away gives the order that epochs 0..5 in turn reach
    (what lets a resumed run shuffle like the uninterrupted one); the epochs' orders are
    permutations of the training rows and differ from one another and between seeds."""
    x, y = digits_like()
    net = Network(12, [{"units": 4, "activation": "softmax"}])

    def rows(seed: int) -> epochrows.EpochRows:
        options = TrainingOptions(batch_size=32, validation_split=0.2, seed=seed)
        return Trainer(net, x, y, options).loop.epoch_rows

    in_turn, direct = rows(0), rows(0)
    orders = []
    for epoch in range(6):
        in_turn.arrange(epoch)
        assert in_turn.order is not None
        orders.append(in_turn.order.copy())
    direct.arrange(5)
    assert direct.order is not None
    np.testing.assert_array_equal(direct.order, orders[5])
    np.testing.assert_array_equal(direct.source, in_turn.source)
    np.testing.assert_array_equal(direct.ys, in_turn.ys)
    train_rows = np.sort(orders[0])
    assert len(train_rows) == 240 and len(set(train_rows.tolist())) == 240
    for order in orders[1:]:
        np.testing.assert_array_equal(np.sort(order), train_rows)
    assert len({order.tobytes() for order in orders}) == 6
    other = rows(1)
    other.arrange(5)
    assert other.order is not None and other.order.tobytes() != orders[5].tobytes()
