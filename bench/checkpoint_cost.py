"""Checkpoint cost at epoch 10 and at epoch 10,000: blob size and write time, and ratios.

A 2-8-8-1 network (tanh, sigmoid output, Adam, layer diagnostics on) trains on 64 rows
of two moons in one batch per epoch. At epoch 10 and again at epoch 10,000 the bench
times what a worker does for a checkpoint (``app.jobs.attempt``): ``Trainer.checkpoint()``,
the blob write (a file store) and the fenced ``queue.save_progress`` transaction that
records it with the epoch's history row (a migrated SQLite database, a claimed job),
REPEATS times, and reports the median. The peer, in the same run, is the previous
design's payload: the same state plus the whole history, which every checkpoint embedded
and every progress write rewrote (its size, and the time to serialise it on top).

The findings every progress write carries are timed at the same epochs: the incremental
``findings.Findings`` taking the epoch's entry and listing its findings (what a worker
does per epoch), against re-reading the whole history — ``findings.evaluate(history)``
and the previous whole-history rules (``tests/engine/findings_reference.py``), which a
worker ran every epoch before (then throttled to 10x their cost).

Run: ``python bench/checkpoint_cost.py`` (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are
removed from its environment, see bench/README.md).
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

EPOCHS = (10, 10_000)
REPEATS = 30


def _reexec_without_openblas_tuning() -> None:
    tuned = [name for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if name in os.environ]
    if tuned:
        print(f"removed {', '.join(tuned)} from the environment", flush=True)
        env = {k: v for k, v in os.environ.items() if k not in tuned}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main() -> None:
    _reexec_without_openblas_tuning()
    import numpy as np

    from app.engine import findings, npzio
    from app.engine.datasets import generate
    from app.engine.network import Network
    from app.engine.training import Trainer, TrainingOptions
    from app.jobs import queue
    from app.storage.blob_file import FileBlobStore
    from app.storage.database import Database
    from app.storage.migrations import upgrade
    from app.storage.tables import Job, Owner
    from tests.engine import findings_reference

    workdir = Path(tempfile.mkdtemp(prefix="checkpoint-cost-"))
    url = f"sqlite:///{workdir / 'bench.db'}"
    upgrade(url)
    db = Database(url)
    blobs = FileBlobStore(workdir / "blobs")
    with db.session() as session:
        owner = Owner(name="bench")
        session.add(owner)
        session.flush()
        session.add(
            Job(owner_id=owner.id, network_config={}, options={}, epochs=max(EPOCHS), findings=[])
        )
    claim = queue.claim_next(db, worker_id="bench", lease_seconds=3600)
    assert claim is not None

    x, y = generate("moons", n_samples=64, seed=0)
    layers = [
        {"units": 8, "activation": "tanh"},
        {"units": 8, "activation": "tanh"},
        {"units": 1, "activation": "sigmoid"},
    ]
    options = TrainingOptions.from_dict(
        {"epochs": max(EPOCHS), "batch_size": 64, "optimizer": {"name": "adam"}, "seed": 0}
    )
    trainer = Trainer(Network(2, layers, seed=0), np.asarray(x, np.float32), y, options)
    stop_at = iter(EPOCHS)
    target = next(stop_at)
    rows: list[dict[str, float]] = []
    tracker = findings.Findings()  # the epochs before the current one
    found_rows: list[dict[str, float]] = []

    def median_ms(call: Callable[[], object], repeats: int) -> float:
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - started)
        return statistics.median(seconds) * 1000

    def measure_findings(entry: dict[str, object]) -> None:
        history = trainer.history
        seconds = []
        for _ in range(REPEATS):
            clone = copy.deepcopy(tracker)  # bounded: windows of a few epochs
            started = time.perf_counter()
            clone.add(entry)
            incremental = clone.current()
            seconds.append(time.perf_counter() - started)
        assert incremental == findings_reference.evaluate(history)
        found_rows.append(
            {
                "epoch": trainer.epoch,
                "incremental_ms": statistics.median(seconds) * 1000,
                "whole_ms": median_ms(lambda: findings.evaluate(history), 5),
                "previous_ms": median_ms(lambda: findings_reference.evaluate(history), 5),
            }
        )

    def measure() -> None:
        history = trainer.history
        progress = queue.Progress(
            epoch=trainer.epoch,
            metrics=None,
            history=history[-1:],
            samples_trained=trainer.samples_trained,
            train_seconds=0.0,
        )
        sizes, seconds = [], []
        for _ in range(REPEATS):
            started = time.perf_counter()
            blob = trainer.checkpoint()
            ref = blobs.put_bytes(blob)
            assert queue.save_progress(db, claim, progress, checkpoint_sha256=ref.sha256)
            seconds.append(time.perf_counter() - started)
            sizes.append(len(blob))
        started = time.perf_counter()
        embedded = npzio.put_json({"history": history}).nbytes  # the previous design's extra
        peer_extra = time.perf_counter() - started
        write = statistics.median(seconds)
        rows.append(
            {
                "epoch": trainer.epoch,
                "bytes": statistics.median(sizes),
                "ms": write * 1000,
                "peer_bytes": statistics.median(sizes) + embedded,
                "peer_ms": (write + peer_extra) * 1000,
            }
        )

    def on_epoch(entry: dict[str, object]) -> None:
        nonlocal target
        if trainer.epoch == target:
            measure()
            measure_findings(entry)
            target = next(stop_at, -1)
        tracker.add(entry)

    trainer.run(on_epoch=on_epoch)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"2-8-8-1, 64 rows, Adam, diagnostics on; {REPEATS} writes each, medians")
    print(f"load average (1/5/15 min): {load}; {os.cpu_count()} CPUs")
    print(
        f"{'epoch':>7} {'checkpoint bytes':>17} {'write ms':>9} {'peer bytes':>11} {'peer ms':>8}"
    )
    for row in rows:
        print(
            f"{row['epoch']:>7.0f} {row['bytes']:>17.0f} {row['ms']:>9.2f} "
            f"{row['peer_bytes']:>11.0f} {row['peer_ms']:>8.2f}"
        )
    first, last = rows[0], rows[-1]
    print(
        f"ratio epoch {last['epoch']:.0f} / epoch {first['epoch']:.0f}: size "
        f"{last['bytes'] / first['bytes']:.3f}, write time {last['ms'] / first['ms']:.3f} "
        f"(peer, whole history: size {last['peer_bytes'] / first['peer_bytes']:.1f}, "
        f"time {last['peer_ms'] / first['peer_ms']:.1f})"
    )
    print(f"findings per epoch, ms (medians of {REPEATS} incremental, 5 whole re-reads):")
    print(f"{'epoch':>7} {'incremental':>12} {'whole history':>14} {'previous rules':>15}")
    for row in found_rows:
        print(
            f"{row['epoch']:>7.0f} {row['incremental_ms']:>12.3f} {row['whole_ms']:>14.1f} "
            f"{row['previous_ms']:>15.1f}"
        )
    first, last = found_rows[0], found_rows[-1]
    print(
        f"findings ratio epoch {last['epoch']:.0f} / epoch {first['epoch']:.0f}: incremental "
        f"{last['incremental_ms'] / first['incremental_ms']:.2f} (whole history "
        f"{last['whole_ms'] / first['whole_ms']:.0f}, previous rules "
        f"{last['previous_ms'] / first['previous_ms']:.0f})"
    )
    print(json.dumps({"checkpoints": rows, "findings": found_rows}))
    db.dispose()


if __name__ == "__main__":
    main()
