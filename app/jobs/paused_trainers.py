"""Paused sweep trials' trainers, kept in the worker process that paused them, so that a
promotion this worker claims continues the trainer it has instead of resuming it from
the checkpoint blob.

A halving trial that reaches its rung's epochs ends with a checkpoint (committed with
its model: the durable state, which any worker can resume). When the rung's best are
promoted, each is claimed again; resuming from the checkpoint reads the job's history
rows and the checkpoint blob, parses it and rebuilds the trainer (a resumed start took
~2.3 ms more than a fresh one on the benchmark's digits sweep, BENCHMARKS.md §9
"sweeps-s14"). The trainer that wrote the checkpoint is in exactly that state
(``Trainer.checkpoint`` captures all of it, and a paused run's ``wrap_up`` changes
nothing), so continuing it trains the same epochs, bit for bit, as resuming would
(``tests/engine/test_continue_paused.py``, ``tests/api/test_paused_trainers.py``).

An entry is used only for the checkpoint it was kept with: the job's row must still name
that blob when the trial is claimed again (a trial continued elsewhere meanwhile has a
newer one), and an entry is used once. Only small networks are kept (where the resume
is a large share of a rung's work), on one prepared dataset at a time (the worker's
data_memo prepares one per dataset, validation split and seed: an attempt on another
drops them, so the data they hold is not pinned beside the next), at most
:data:`MAX_TRAINERS` of them and :data:`MAX_BYTES` of their arrays and data, the least
recently kept dropped first; the worker drops them all once it has idled
``app.jobs.worker.KEEP_PAUSED_SECONDS`` or stops. A worker that dies loses them and
nothing else.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections import OrderedDict

import numpy as np

from app.engine.pack import PACK_MAX_PARAMETERS
from app.engine.training import Trainer
from app.engine.trainingdata import TrainingData

MAX_TRAINERS = 64  # a rung of the benchmark's 48-trial sweep per worker, and some
MAX_BYTES = 128 * 1024 * 1024  # of the arrays the trainers hold, their data's included
SIZES_KEPT = 1024  # sizes by shape remembered (a sweep of 48 trials needs ~24)
KEPT_PARAMETERS = PACK_MAX_PARAMETERS  # larger networks' resume is a small share of a rung


def _data_size(data: TrainingData) -> int:
    """The bytes of a dataset's prepared arrays (shared by the trainers kept: counted
    once)."""
    arrays = {id(a): a for a in (data.x, data.y, data.x_val, data.y_val) if a is not None}
    return sum(int(a.nbytes) for a in arrays.values())


def _size(trainer: Trainer) -> int:
    """The bytes a kept trainer holds besides its data: every object reachable from its
    network and epoch loop (parameters, optimizer state, best weights, logits, the epoch's
    rows and targets, each batch's views, workspaces, validation buffers, a diagnostics
    ring), each counted once (an array's buffer with the array that owns it). What it
    shares with other kept trainers (a pack's epoch rows) is counted for each: the limits
    err on the safe side."""
    data = trainer.data
    skip = {id(a) for a in (data.x, data.y, data.x_val, data.y_val) if a is not None}
    visited: set[int] = set()
    total = 0
    stack: list[object] = [trainer.network, trainer.loop]
    while stack:
        item = stack.pop()
        if id(item) in visited or id(item) in skip or isinstance(item, TrainingData):
            continue
        visited.add(id(item))
        total += sys.getsizeof(item)  # an array's: its buffer too when it owns one
        if isinstance(item, np.ndarray):
            if isinstance(item.base, np.ndarray):
                stack.append(item.base)
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif type(item).__module__.startswith("app.engine."):
            stack.extend(_fields(item))
    return total


def _shape_key(trainer: Trainer) -> tuple[object, ...]:
    """What the bytes :func:`_size` counts follow from, besides the trainer's data (a store
    holds one dataset's trainers): the epochs it has trained (its history's length), the
    network's sizes and dtype, and every option but those that change only values (epochs
    to go, seed, the optimizer's rates and betas). A halving rung's trials that differ
    only in those hold arrays of the same shapes and histories of the same length: sized
    once, not once each (the walk took ~0.5 ms of each trial's ending in the benchmark's
    halving sweep)."""
    network, options = trainer.network, trainer.options
    optimizer = options.optimizer
    return (
        trainer.epoch,  # the history holds an entry per epoch trained (with statistics)
        network.input_size,
        tuple(network.layer_sizes),
        network.dtype.str,
        options.batch_size,
        (optimizer.name, optimizer.momentum, optimizer.nesterov),
        (options.l2, options.clip_norm, options.lr_schedule, options.early_stopping),
        (options.validation_split, options.standardize, options.shuffle, options.diagnostics),
    )


def _fields(item: object) -> list[object]:
    """The attribute values of an engine object (``__dict__`` and ``__slots__``)."""
    values = list(getattr(item, "__dict__", {}).values())
    for cls in type(item).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(item, name):
                values.append(getattr(item, name))
    return values


class PausedTrainers:
    """The trainers of paused trials, by job id, each with the checkpoint it wrote."""

    def __init__(self, max_trainers: int = MAX_TRAINERS, max_bytes: int = MAX_BYTES) -> None:
        self.max_trainers, self.max_bytes = max_trainers, max_bytes
        self._kept: OrderedDict[str, tuple[str, Trainer, int]] = OrderedDict()
        self._data: TrainingData | None = None  # the kept trainers' prepared dataset
        self._data_bytes = 0  # its arrays'
        self._bytes = 0  # the kept trainers' own and, once, their data's
        self._lock = threading.Lock()
        self._sizes: dict[tuple[object, ...], int] = {}  # _size by _shape_key, on:
        self._sized_data: weakref.ref[TrainingData] | None = None
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, job_id: str, checkpoint_sha256: str, trainer: Trainer) -> None:
        """Keep ``trainer``, paused at the checkpoint ``checkpoint_sha256`` just committed
        for job ``job_id`` (not kept when its network is large, or it alone would pass
        the limits)."""
        if trainer.network.params.size > KEPT_PARAMETERS or self.max_trainers <= 0:
            return
        data_bytes = _data_size(trainer.data)
        if data_bytes > self.max_bytes:
            return
        size = self._size_of(trainer)
        with self._lock:
            self._drop(job_id)
            self._only(trainer.data)
            if data_bytes + size > self.max_bytes:
                return
            if not self._kept:
                self._data, self._data_bytes, self._bytes = trainer.data, data_bytes, data_bytes
            self._kept[job_id] = (checkpoint_sha256, trainer, size)
            self._bytes += size
            while len(self._kept) > self.max_trainers or self._bytes > self.max_bytes:
                self._drop(next(iter(self._kept)))

    def _size_of(self, trainer: Trainer) -> int:
        """``_size(trainer)``, remembered by ``_shape_key`` for trainers on the same data
        (held by a weak reference: the sizes do not pin a dataset)."""
        key = _shape_key(trainer)
        with self._lock:
            if self._sized_data is None or self._sized_data() is not trainer.data:
                self._sizes.clear()
                self._sized_data = weakref.ref(trainer.data)
            size = self._sizes.get(key)
        if size is None:
            size = _size(trainer)
            with self._lock:
                if self._sized_data is not None and self._sized_data() is trainer.data:
                    if len(self._sizes) >= SIZES_KEPT:  # they outlive idles: bounded here
                        self._sizes.clear()
                    self._sizes[key] = size
        return size

    def training_on(self, data: TrainingData) -> None:
        """An attempt of this worker trains on ``data``: the trainers kept for another
        dataset go (their data is not held beside this one)."""
        with self._lock:
            self._only(data)

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
        """Drop every kept trainer. The sizes by shape stay: they hold no trainer and, by
        a weak reference, not the data either; the next sweep on the same prepared data
        (the worker's data_memo keeps it) then walks none of its trainers again (the
        benchmark's halving sweeps walked ~21 each, ~8 ms of a sweep's CPU)."""
        with self._lock:
            self._kept.clear()
            self._data, self._data_bytes, self._bytes = None, 0, 0

    def _only(self, data: TrainingData) -> None:
        if self._kept and data is not self._data:
            self._kept.clear()
            self._data, self._data_bytes, self._bytes = None, 0, 0

    def _drop(self, job_id: str) -> tuple[str, Trainer, int] | None:
        entry = self._kept.pop(job_id, None)
        if entry is not None:
            self._bytes -= entry[2]
            if not self._kept:  # nothing holds the data any more
                self._data, self._data_bytes, self._bytes = None, 0, 0
        return entry


PAUSED = PausedTrainers()  # this process's: its worker's (one claim, one pack, at a time)
