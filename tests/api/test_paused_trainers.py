"""A paused trial's trainer kept by the worker that paused it (app/jobs/paused_trainers.py):
a promotion claimed by that worker continues it, and ends exactly as a trial resumed from
its checkpoint; an entry serves only the checkpoint it was kept with, once, within the
store's limits, and the worker drops them when it idles or stops."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest
from sqlalchemy import select

from app.config import Settings
from app.engine.network import Network
from app.engine.training import Trainer, TrainingOptions
from app.jobs import paused_trainers
from app.jobs import worker as worker_module
from app.jobs.paused_trainers import PausedTrainers
from app.jobs.worker import Worker
from app.storage.database import Database
from app.storage.tables import Job, Sweep
from tests.api.client import ApiClient
from tests.api.sweeps import create, make_data, sweep_body, trial_outcomes, work

GRID = {"job.optimizer.learning_rate": [0.003, 0.01, 0.03, 0.1], "job.batch_size": [8, 32]}
HALVING = {"name": "halving", "factor": 2, "min_epochs": 2}


def _samples(db: Database, sweep_id: str) -> dict[int, int]:
    with db.read_session() as session:
        rows = session.execute(
            select(Job.trial_index, Job.samples_trained).where(Job.sweep_id == sweep_id)
        )
        return {int(index or 0): samples for index, samples in rows}


@pytest.mark.parametrize("pack_trials", [1, 4], ids=["alone", "packs"])
def test_promotions_continue_the_kept_trainers_as_resumed_ones_would(
    client: ApiClient, db: Database, pack_trials: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_data(client)
    job = {"epochs": 8, "batch_size": 8, "validation_split": 0.2, "seed": 2}
    body = sweep_body(data, job=job, grid=GRID, strategy=HALVING, metric="val_loss")
    store = PausedTrainers()
    monkeypatch.setattr(paused_trainers, "PAUSED", store)
    kept = create(client, {**body, "name": "kept"})
    work(db, pack_trials)
    # One worker: every promotion (4 after rung 2, 2 after rung 4) continued its trainer.
    assert (store.hits, store.misses) == (6, 0)
    assert len(store) == 0  # dropped when the worker stopped

    none_kept = PausedTrainers(max_trainers=0)
    monkeypatch.setattr(paused_trainers, "PAUSED", none_kept)
    resumed = create(client, {**body, "name": "resumed"})
    work(db, pack_trials)
    assert (none_kept.hits, none_kept.misses) == (0, 6)  # each read its checkpoint

    assert trial_outcomes(client, db, kept["id"]) == trial_outcomes(client, db, resumed["id"])
    assert _samples(db, kept["id"]) == _samples(db, resumed["id"])


def test_a_worker_keeps_them_a_while_after_its_last_job_then_drops_them(
    client: ApiClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PausedTrainers()
    monkeypatch.setattr(paused_trainers, "PAUSED", store)
    monkeypatch.setattr(worker_module, "KEEP_PAUSED_SECONDS", 1.5)
    data = make_data(client)
    job = {"epochs": 4, "batch_size": 8, "validation_split": 0.2, "seed": 2}
    grid = {"job.optimizer.learning_rate": [0.01, 0.1]}
    sweep = create(client, sweep_body(data, job=job, grid=grid, strategy=HALVING))
    settings = Settings(database_url=db.url, checkpoint_seconds=0, poll_seconds=0.02)
    worker = Worker(db, settings, "idle")
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        # The loser of rung 2 stays kept after the sweep ends, while the worker idles...
        deadline = time.monotonic() + 60
        while _status(db, sweep["id"]) != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert len(store) == 1
        # ...until it has idled KEEP_PAUSED_SECONDS.
        while len(store):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        worker.stopping.set()
        thread.join()


def _status(db: Database, sweep_id: str) -> str:
    with db.read_session() as session:
        return str(session.scalar(select(Sweep.status).where(Sweep.id == sweep_id)))


# --- the store ---------------------------------------------------------------------------


def _trainer(units: int = 3, rows: int = 40, data: Trainer | None = None) -> Trainer:
    """A small trainer, paused after one epoch of two (on ``data``'s data when given)."""
    rng = np.random.default_rng(0)
    network = Network.from_config(
        {
            "input_size": 2,
            "layers": [
                {"units": units, "activation": "relu"},
                {"units": 1, "activation": "linear"},
            ],
            "loss": "mse",
        }
    )
    options = TrainingOptions.from_dict({"epochs": 2, "batch_size": 8})
    x = rng.normal(size=(rows, 2)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    if data is None:
        trainer = Trainer(network, x, y, options)
    else:  # the same prepared data object, as data_memo hands a worker's trials
        trainer = Trainer(network, x, y, options, prepare=lambda *_, **__: data.data)
    trainer.loop.stop_at = 1
    trainer.run()
    return trainer


def test_an_entry_serves_its_own_checkpoint_once() -> None:
    store = PausedTrainers()
    trainer = _trainer()
    store.keep("job-a", "sha-1", trainer)
    assert store.take("job-a", "sha-1") is trainer
    assert store.take("job-a", "sha-1") is None  # used once
    store.keep("job-a", "sha-1", trainer)
    assert store.take("job-a", "sha-2") is None  # continued elsewhere: a newer checkpoint
    assert store.take("job-a", "sha-1") is None  # and the stale entry is gone
    assert (store.hits, store.misses) == (1, 3)


def test_the_oldest_entries_go_first_beyond_the_limits() -> None:
    first = _trainer()
    others = [_trainer(data=first) for _ in range(2)]
    store = PausedTrainers(max_trainers=2)
    for number, trainer in enumerate([first, *others]):
        store.keep(f"job-{number}", "sha", trainer)
    assert len(store) == 2 and store.take("job-0", "sha") is None
    assert store.take("job-2", "sha") is others[1]

    data_bytes = first.data.x.nbytes + first.data.y.nbytes  # no validation rows
    own = paused_trainers._size(first)
    by_bytes = PausedTrainers(max_bytes=data_bytes + 2 * own)
    for number, trainer in enumerate([first, *others]):
        by_bytes.keep(f"job-{number}", "sha", trainer)
    assert len(by_bytes) == 2 and by_bytes.take("job-0", "sha") is None


def test_a_trainers_size_counts_what_it_holds_besides_its_data() -> None:
    """Every array the trainer built (its epoch rows, workspaces, optimizer state, logits,
    buffers), as NumPy allocated them: within a few percent of tracemalloc's count."""
    base = _trainer(rows=4000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        trainer = _trainer(units=64, rows=4000, data=base)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    size = paused_trainers._size(trainer)
    assert 0.8 * held <= size <= 1.1 * held, (size, held)


def test_one_dataset_at_a_time_and_only_small_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    store = PausedTrainers()
    one, other = _trainer(), _trainer()  # each prepared its own data
    store.keep("job-1", "sha", one)
    store.keep("job-2", "sha", other)  # another dataset: the first one's trainers go
    assert len(store) == 1 and store.take("job-1", "sha") is None
    assert store.take("job-2", "sha") is other and len(store) == 0
    store.keep("job-3", "sha", one)
    store.training_on(one.data)  # an attempt on the same data keeps them
    assert len(store) == 1
    store.training_on(other.data)  # one on another dataset drops them
    assert len(store) == 0

    monkeypatch.setattr(paused_trainers, "KEPT_PARAMETERS", 8)
    store.keep("job-4", "sha", _trainer(units=4))  # 17 parameters: resumed, not kept
    assert len(store) == 0
    too_big = PausedTrainers(max_bytes=1)
    too_big.keep("job-5", "sha", one)
    assert len(too_big) == 0


def _on_data_of(first: Trainer, options: dict[str, object]) -> Trainer:
    """A trainer of ``first``'s network on its prepared data with ``options`` (batch size 8
    unless given), paused after one epoch as ``_trainer``'s are."""
    trainer = Trainer(
        Network.from_config(first.network.get_config()),
        first.data.x,
        first.data.y,
        TrainingOptions.from_dict({"batch_size": 8, **options}),
        prepare=lambda *_, **__: first.data,
    )
    trainer.loop.stop_at = 1
    trainer.run()
    return trainer


def test_trainers_that_differ_in_values_only_are_sized_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Trials of one sweep that differ in learning rate, epochs or seed hold arrays of the
    same shapes: the store walks the first and reuses its size; another batch size (other
    shapes) is walked again, and so is any trainer once the data changes."""
    first = _trainer()
    walked: list[Trainer] = []
    real = paused_trainers._size

    def counted(trainer: Trainer) -> int:
        walked.append(trainer)
        return real(trainer)

    monkeypatch.setattr(paused_trainers, "_size", counted)
    store = PausedTrainers()
    same_shapes = [
        _on_data_of(first, {"epochs": epochs, "seed": seed, "optimizer": {"learning_rate": rate}})
        for rate, epochs, seed in [(0.003, 2, 0), (0.1, 7, 5)]
    ]
    for number, trainer in enumerate([first, *same_shapes]):
        store.keep(f"job-{number}", "sha", trainer)
    assert walked == [first]
    assert [entry[2] for entry in store._kept.values()] == [real(first)] * 3
    # What the reuse relies on: the same arrays (a few Python ints apart: counters, seeds).
    assert all(abs(real(t) - real(first)) <= 0.001 * real(first) for t in same_shapes)

    store.clear()  # the worker idled: the trainers go, what their shapes hold stays known
    store.keep("job-3", "sha", _on_data_of(first, {"epochs": 3, "seed": 9}))
    assert walked == [first] and len(store) == 1

    trainer = _on_data_of(first, {"epochs": 2, "batch_size": 16})
    store.keep("job-9", "sha", trainer)
    assert walked == [first, trainer]
    elsewhere = _trainer()  # its own prepared data: sized afresh
    store.keep("job-10", "sha", elsewhere)
    assert walked == [first, trainer, elsewhere]
    # More epochs trained: a longer history (an entry per epoch), sized afresh.
    further = _on_data_of(elsewhere, {"epochs": 60})
    further.loop.stop_at = 40
    further.run()
    store.keep("job-11", "sha", further)
    assert walked[-1] is further and store._kept["job-11"][2] == real(further)
    assert real(further) > real(elsewhere)


def test_the_sizes_it_remembers_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sizes by shape outlive a worker's idles: past SIZES_KEPT shapes they start over."""
    monkeypatch.setattr(paused_trainers, "SIZES_KEPT", 2)
    first = _trainer()
    store = PausedTrainers()
    for number, batch_size in enumerate([4, 8, 16, 32, 2]):
        store.keep(f"job-{number}", "sha", _on_data_of(first, {"batch_size": batch_size}))
        assert 1 <= len(store._sizes) <= 2
    store.clear()
    assert len(store._sizes) == 1  # kept over the idle
