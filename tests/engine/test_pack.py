"""Trials trained together (app/engine/pack.py): every member ends exactly where it would
have alone — weights, optimizer state and history, bit for bit — whatever leaves the pack
when (its epochs, early stopping, a stop request, divergence)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.engine.errors import DivergenceError, EngineError
from app.engine.network import Network
from app.engine.pack import Member, Pack, pack_key, packs
from app.engine.training import (
    EarlyStoppingOptions,
    OptimizerOptions,
    ScheduleOptions,
    Trainer,
    TrainingOptions,
    TrainingResult,
)
from app.engine.trainingdata import TrainingData

RATES = (0.003, 0.01, 0.03)


def _data(task: str, rows: int = 83, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 5)).astype(np.float32)
    if task == "multiclass":
        return x, (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 0.5).astype(int)
    if task == "binary":
        return x, (x[:, 0] - x[:, 3] > 0).astype(int)
    return x, np.stack([x[:, 0] * 2 - x[:, 1], x[:, 2]], axis=1)


OUTPUTS = {
    "multiclass": {"units": 3, "activation": "softmax"},
    "binary": {"units": 1, "activation": "sigmoid"},
    "regression": {"units": 2, "activation": "linear"},
}


class _Memo:
    """One TrainingData for every trainer on the same arrays (as a worker's memo)."""

    def __init__(self) -> None:
        self.kept: dict[Any, TrainingData] = {}

    def __call__(self, network: Network, x: Any, y: Any, **arguments: Any) -> TrainingData:
        key = (id(x), network.loss, arguments["validation_split"], arguments["seed"])
        if key not in self.kept or arguments.get("classes") is not None:
            self.kept[key] = TrainingData.prepare(network, x, y, **arguments)
        return self.kept[key]


def _trainer(
    x: np.ndarray,
    y: np.ndarray,
    task: str,
    hidden: list[dict[str, Any]],
    prepare: Any,
    net_seed: int = 0,
    **options: Any,
) -> Trainer:
    network = Network(5, [*hidden, OUTPUTS[task]], seed=net_seed)
    options = {"diagnostics": False, **options}
    return Trainer(network, x, y, TrainingOptions(**options), prepare=prepare)


def _same(a: Trainer, b: Trainer) -> None:
    assert np.array_equal(a.network.params, b.network.params)
    assert np.array_equal(a.best_params, b.best_params)
    sa, sb = a.loop.optimizer.state(), b.loop.optimizer.state()
    assert sa[0] == sb[0]
    for name in sa[1]:
        assert np.array_equal(sa[1][name], sb[1][name])
    timing = {"seconds", "samples_per_second"}
    strip = [[{k: v for k, v in e.items() if k not in timing} for e in t.history] for t in (a, b)]
    assert strip[0] == strip[1]
    assert a.progress.epoch == b.progress.epoch
    assert a.progress.early_stopped == b.progress.early_stopped


def _run_pack(trainers: list[Trainer], **callbacks: Any) -> dict[int, Any]:
    outcomes: dict[int, Any] = {}
    members = [Member(t, **callbacks.get(str(i), {})) for i, t in enumerate(trainers)]
    Pack(members).run(outcomes.update)
    return outcomes


CASES = [
    ("multiclass", [{"units": 7, "activation": "relu"}], {"name": "adam"}, {}),
    (
        "multiclass",
        [{"units": 6, "activation": "tanh"}, {"units": 4, "activation": "leaky_relu"}],
        {"name": "momentum", "nesterov": True},
        {"l2": 0.01},
    ),
    ("binary", [{"units": 6, "activation": "sigmoid"}], {"name": "sgd"}, {"batch_size": 1}),
    (
        "regression",
        [{"units": 8, "activation": "relu"}],
        {"name": "momentum"},
        {"lr_schedule": ScheduleOptions(name="cosine"), "validation_split": 0.0},
    ),
    ("multiclass", [{"units": 5, "activation": "relu"}], {"name": "adam"}, {"batch_size": 83}),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("task", "hidden", "optimizer", "extra"), CASES)
def test_members_end_bit_identical_to_training_alone(
    task: str,
    hidden: list[dict[str, Any]],
    optimizer: dict[str, Any],
    extra: dict[str, Any],
    dtype: str,
) -> None:
    x, y = _data(task)
    settings: dict[str, Any] = {
        "epochs": 6,
        "batch_size": 16,
        "validation_split": 0.2,
        "diagnostics": False,
        **extra,
    }
    memo = _Memo()

    def make(rate: float, memo: Any, epochs: int) -> Trainer:
        network = Network(5, [*hidden, OUTPUTS[task]], seed=3, dtype=dtype)
        opts = TrainingOptions(
            **{**settings, "epochs": epochs},
            optimizer=OptimizerOptions(**optimizer, learning_rate=rate),
        )
        return Trainer(network, x, y, opts, prepare=memo)

    # Different rates, and one member with fewer epochs (it leaves first).
    epochs = [6, 4, 6]
    packed = [make(rate, memo, e) for rate, e in zip(RATES, epochs, strict=True)]
    assert len({pack_key(t) for t in packed}) == 1 and pack_key(packed[0]) is not None
    outcomes = _run_pack(packed)
    for i, (rate, e) in enumerate(zip(RATES, epochs, strict=True)):
        alone = make(rate, _Memo(), e)
        result = alone.run()
        assert isinstance(outcomes[i], TrainingResult)
        assert outcomes[i].epochs_run == result.epochs_run == e
        assert np.array_equal(outcomes[i].model.network.params, result.model.network.params)
        _same(packed[i], alone)


def test_early_stopping_member_leaves_with_its_best_weights_and_the_rest_go_on() -> None:
    x, y = _data("multiclass", rows=120)
    memo = _Memo()
    hidden = [{"units": 9, "activation": "relu"}]

    def make(rate: float, prepare: Any, patience: int | None) -> Trainer:
        stopping = EarlyStoppingOptions(patience=patience) if patience else None
        return _trainer(
            x,
            y,
            "multiclass",
            hidden,
            prepare,
            epochs=30,
            batch_size=32,
            validation_split=0.25,
            optimizer=OptimizerOptions(name="adam", learning_rate=rate),
            early_stopping=stopping,
        )

    plan = [(0.3, 1), (0.01, None), (0.003, 3)]
    packed = [make(rate, memo, patience) for rate, patience in plan]
    outcomes = _run_pack(packed)
    alone = [make(rate, _Memo(), patience) for rate, patience in plan]
    for i, trainer in enumerate(alone):
        result = trainer.run()
        assert np.array_equal(outcomes[i].model.network.params, result.model.network.params)
        _same(packed[i], trainer)
    assert outcomes[0].early_stopped and outcomes[0].epochs_run < 30
    assert outcomes[1].epochs_run == 30


def test_a_member_told_to_stop_leaves_mid_epoch_and_resumes_alone_bit_identical() -> None:
    x, y = _data("multiclass", rows=100)
    memo = _Memo()
    hidden = [{"units": 6, "activation": "relu"}]
    settings = {"epochs": 5, "batch_size": 8, "validation_split": 0.2}

    def make(rate: float, prepare: Any) -> Trainer:
        opts = OptimizerOptions(name="adam", learning_rate=rate)
        return _trainer(x, y, "multiclass", hidden, prepare, optimizer=opts, **settings)

    calls = {"n": 0}

    def stop_in_epoch_three() -> bool:
        calls["n"] += 1
        return calls["n"] > 2 * 10 + 4  # 10 batches an epoch: batch 4 of epoch 3

    packed = [make(rate, memo) for rate in RATES]
    outcomes = _run_pack(packed, **{"1": {"should_stop": stop_in_epoch_three}})
    assert outcomes[1].stopped and packed[1].progress.epoch == 2
    assert packed[1].progress.batches_done == 4
    resumed = Trainer.resume(packed[1].checkpoint(), x, y, history=packed[1].history)
    resumed.run()
    for i, rate in enumerate(RATES):
        alone = make(rate, _Memo())
        alone.run()
        assert np.array_equal(
            (resumed if i == 1 else packed[i]).network.params, alone.network.params
        )
        if i != 1:
            _same(packed[i], alone)


@pytest.mark.parametrize(
    ("rows", "batch", "why"),
    [(64, 4, "the loss became"), (400, 2, "the outputs or gradients became NaN")],
)
def test_a_diverging_member_fails_alone_and_the_others_finish(
    rows: int, batch: int, why: str
) -> None:
    x, y = _data("regression", rows=rows)
    memo = _Memo()
    hidden = [{"units": 6, "activation": "relu"}]

    def make(rate: float, prepare: Any) -> Trainer:
        opts = OptimizerOptions(name="sgd", learning_rate=rate)
        return _trainer(
            x, y, "regression", hidden, prepare, optimizer=opts, epochs=8, batch_size=batch
        )

    rates = (0.001, 10.0, 0.01)
    outcomes = _run_pack([make(rate, memo) for rate in rates])
    assert isinstance(outcomes[1], DivergenceError)
    assert why in outcomes[1].message
    assert isinstance(outcomes[1], EngineError)
    for i in (0, 2):
        result = make(rates[i], _Memo()).run()
        assert np.array_equal(outcomes[i].model.network.params, result.model.network.params)


def test_what_cannot_pack() -> None:
    x, y = _data("multiclass")
    memo = _Memo()
    hidden = [{"units": 4, "activation": "relu"}]
    plain = _trainer(x, y, "multiclass", hidden, memo, diagnostics=False)
    assert pack_key(plain) is not None
    assert pack_key(_trainer(x, y, "multiclass", hidden, memo, diagnostics=True)) is None
    clipped = _trainer(x, y, "multiclass", hidden, memo, diagnostics=False, clip_norm=1.0)
    assert pack_key(clipped) is None
    other_batch = _trainer(x, y, "multiclass", hidden, memo, diagnostics=False, batch_size=7)
    other_data = _trainer(x.copy(), y, "multiclass", hidden, _Memo(), diagnostics=False)
    other_seed = _trainer(x, y, "multiclass", hidden, memo, diagnostics=False, seed=5)
    other_init = _trainer(x, y, "multiclass", hidden, memo, net_seed=9, diagnostics=False)
    trainers = [plain, other_batch, other_data, other_seed, other_init]
    assert packs(trainers) == [[0, 4], [1], [2], [3]]
    with pytest.raises(ValueError):
        Pack([Member(plain), Member(other_batch)])


def test_members_diverging_at_the_same_check_all_leave_as_they_would_alone() -> None:
    x, y = _data("regression", rows=163)
    memo = _Memo()
    hidden = [{"units": 6, "activation": "relu"}]

    def make(rate: float, prepare: Any) -> Trainer:
        opts = OptimizerOptions(name="sgd", learning_rate=rate)
        return _trainer(x, y, "regression", hidden, prepare, optimizer=opts, epochs=4, batch_size=2)

    rates = (0.001, 10.0, 9.0)
    packed = [make(rate, memo) for rate in rates]
    outcomes = _run_pack(packed)
    for i in (1, 2):
        alone = make(rates[i], _Memo())
        with pytest.raises(DivergenceError) as raised:
            alone.run()
        assert isinstance(outcomes[i], DivergenceError)
        assert outcomes[i].message == raised.value.message
        assert "the outputs or gradients became NaN" in outcomes[i].message
        assert packed[i].progress.to_dict() == alone.progress.to_dict() | {
            "epoch_seconds": packed[i].progress.epoch_seconds
        }
        assert np.array_equal(packed[i].network.params, alone.network.params, equal_nan=True)
    assert isinstance(outcomes[0], TrainingResult)


def test_a_one_row_last_batch_under_softmax() -> None:
    x, y = _data("multiclass", rows=90)
    hidden = [{"units": 5, "activation": "relu"}]
    rows = _trainer(x, y, "multiclass", hidden, _Memo()).data.train_count

    def make(rate: float, prepare: Any) -> Trainer:
        opts = OptimizerOptions(name="adam", learning_rate=rate)
        return _trainer(
            x, y, "multiclass", hidden, prepare, optimizer=opts, epochs=3, batch_size=rows - 1
        )

    memo = _Memo()
    packed = [make(rate, memo) for rate in RATES]
    _run_pack(packed)
    for rate, trainer in zip(RATES, packed, strict=True):
        alone = make(rate, _Memo())
        alone.run()
        _same(trainer, alone)


def test_members_that_leave_at_the_same_point_are_reported_together() -> None:
    """One ``on_leave`` call per point of leaving, with every member that leaves there:
    the service writes their endings in one transaction (app/jobs/pack_run.py)."""
    x, y = _data("multiclass")
    memo = _Memo()
    hidden = [{"units": 6, "activation": "tanh"}]
    packed = [
        _trainer(x, y, "multiclass", hidden, memo, epochs=epochs, batch_size=16)
        for epochs in (5, 3, 5, 3)
    ]
    calls: list[list[tuple[int, int]]] = []

    def on_leave(group: list[tuple[int, Any]]) -> None:
        calls.append([(i, outcome.epochs_run) for i, outcome in group])

    Pack([Member(t) for t in packed]).run(on_leave)

    assert calls == [[(1, 3), (3, 3)], [(0, 5), (2, 5)]]
