"""Paused sweep trials' trainers, kept in the worker process that paused them, so that a
promotion this worker claims continues the trainer it has instead of resuming it from
the checkpoint blob.

A halving trial that reaches its rung's epochs ends with a checkpoint (committed with
its model: the durable state, which any worker can resume). When the rung's best are
promoted, each is claimed again; resuming from the checkpoint reads the job's history
rows and the checkpoint blob, parses it and rebuilds the trainer (~3-5 ms a trial on the
benchmark's digits sweep, BENCHMARKS.md §9). The trainer that wrote the checkpoint is in
exactly that state (``Trainer.checkpoint`` captures all of it, and a paused run's
``wrap_up`` changes nothing), so continuing it trains the same epochs, bit for bit, as
resuming would (``tests/api/test_paused_trainers.py``).

An entry is used only for the checkpoint it was kept with: the job's row must still name
that blob when the trial is claimed again (a trial continued elsewhere meanwhile has a
newer one), and an entry is used once. Only small networks are kept (where the resume
is a large share of a rung's work), trained on one dataset at a time (keeping a trainer
of another drops the others: the data they hold is not pinned in memory beside the next
dataset's), at most :data:`MAX_TRAINERS` of them and :data:`MAX_BYTES` of their arrays
and data, the least recently kept dropped first. A worker that dies loses them and
nothing else.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from app.engine.pack import PACK_MAX_PARAMETERS
from app.engine.training import Trainer

MAX_TRAINERS = 64  # a rung of the benchmark's 48-trial sweep per worker, and some
MAX_BYTES = 128 * 1024 * 1024  # of the trainers' parameter-sized and row-sized arrays
KEPT_PARAMETERS = PACK_MAX_PARAMETERS  # larger networks' resume is a small share of a rung


def _size(trainer: Trainer) -> int:
    """About the bytes a kept trainer holds of its own: its parameters, best parameters
    and optimizer state (up to 4 parameter-sized arrays) and its logits (validation's
    too)."""
    return 4 * trainer.network.params.nbytes + 2 * trainer.loop.logits.nbytes


def _data_size(trainer: Trainer) -> int:
    """The bytes of the trainer's data (shared by the trainers kept: counted once)."""
    data = trainer.data
    arrays = {id(a): a for a in (data.x, data.y, data.x_val, data.y_val) if a is not None}
    return sum(int(a.nbytes) for a in arrays.values())


class PausedTrainers:
    """The trainers of paused trials, by job id, each with the checkpoint it wrote."""

    def __init__(self, max_trainers: int = MAX_TRAINERS, max_bytes: int = MAX_BYTES) -> None:
        self.max_trainers, self.max_bytes = max_trainers, max_bytes
        self._kept: OrderedDict[str, tuple[str, Trainer, int]] = OrderedDict()
        self._bytes = 0  # the kept trainers' own and, once, their data's
        self._data: object = None  # the kept trainers' TrainingData
        self._data_bytes = 0  # its arrays' bytes
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, job_id: str, checkpoint_sha256: str, trainer: Trainer) -> None:
        """Keep ``trainer``, paused at the checkpoint ``checkpoint_sha256`` just committed
        for job ``job_id`` (not kept when its network is large or the limits are 0)."""
        if trainer.network.params.size > KEPT_PARAMETERS:
            return
        size = _size(trainer)
        with self._lock:
            self._drop(job_id)
            if self._kept and trainer.data is not self._data:
                self._kept.clear()
                self._data, self._bytes = None, 0
            data_bytes = self._data_bytes if self._kept else _data_size(trainer)
            if data_bytes + size > self.max_bytes or self.max_trainers <= 0:
                return
            if not self._kept:
                self._data, self._data_bytes, self._bytes = trainer.data, data_bytes, data_bytes
            self._kept[job_id] = (checkpoint_sha256, trainer, size)
            self._bytes += size
            while len(self._kept) > self.max_trainers or self._bytes > self.max_bytes:
                self._drop(next(iter(self._kept)))

    def take(self, job_id: str, checkpoint_sha256: str) -> Trainer | None:
        """The trainer kept for job ``job_id`` at checkpoint ``checkpoint_sha256``, given
        up by this store (None, and the entry dropped, for any other checkpoint)."""
        with self._lock:
            entry = self._drop(job_id)
            if entry is not None and entry[0] == checkpoint_sha256:
                self.hits += 1
                return entry[1]
            self.misses += 1
            return None

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._data, self._bytes = None, 0

    def _drop(self, job_id: str) -> tuple[str, Trainer, int] | None:
        entry = self._kept.pop(job_id, None)
        if entry is not None:
            self._bytes -= entry[2]
            if not self._kept:  # nothing holds the data any more
                self._data, self._bytes = None, 0
        return entry


PAUSED = PausedTrainers()  # this process's (a worker process runs one attempt at a time)
