"""The dataset a worker process trained on last, kept for its next job.

A sweep's trials train on one dataset with one split, one after another in each worker;
each would otherwise map and hash-check the dataset's arrays, check x, encode y, draw the
split, fit the standardisation and hash the standardised rows for its checkpoint all over
again (a few milliseconds a trial on digits, seconds on MNIST, and as often again when a
halving trial is continued). This keeps, per process, the arrays of the last dataset
(by blob hash) and the :class:`TrainingData` last prepared from them (by everything
``TrainingData.prepare`` reads), and hands them to the next job that asks for the same.

Safe to share: blobs are content-addressed (a hash names one content), x is mapped
read-only and y is kept read-only, and a TrainingData is never written by the trainers
that use it (``app/engine/trainingdata.py``). A resumed run still checks the data's
fingerprint against its checkpoint's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from app.engine.network import Network
from app.engine.preprocessing import Standardizer
from app.engine.trainingdata import TrainingData

Array = np.ndarray[Any, Any]

_lock = threading.Lock()
_arrays: dict[str, Array] = {}  # blob hash -> array: the last dataset's x and y
_prepared: tuple[tuple[Any, ...], bool | None, TrainingData] | None = None  # key, fitted stats


def array(sha256: str, load: Callable[[], Array]) -> Array:
    """The array of blob ``sha256``: the one kept if it is the last dataset's, else
    ``load()`` (kept, read-only, in place of the arrays of an older dataset once both
    of a new dataset's arrays are in)."""
    with _lock:
        known = _arrays.get(sha256)
    if known is not None:
        return known
    loaded = load()
    loaded.flags.writeable = False
    with _lock:
        if len(_arrays) >= 2:
            _arrays.clear()
        _arrays[sha256] = loaded
    return loaded


def _same_standardizer(a: Standardizer | None, b: Standardizer | None) -> bool:
    if a is None or b is None:
        return a is b
    return (
        a.mean.dtype == b.mean.dtype
        and np.array_equal(a.mean, b.mean)
        and np.array_equal(a.std, b.std)
    )


def preparer(x_sha256: str, y_sha256: str) -> Callable[..., TrainingData]:
    """A ``DataPreparer`` (app/engine/training.py) for the arrays of these two blobs.

    What is kept is the data last prepared without an explicit validation set: a new
    run's (classes and statistics fitted from the arrays) or one prepared with given
    classes and statistics (a resumed run's, an initial model's). It is handed back for
    the same arrays, network shape, loss, split and seed when the call would prepare the
    same: another new run with the same ``fit_standardizer`` (of a new run's data only),
    or a call given the classes and statistics the data holds. Data with an explicit
    validation set is prepared anew and not kept."""

    def prepare(network: Network, x: Any, y: Any, **arguments: Any) -> TrainingData:
        # The arguments are TrainingData.prepare's, passed on as they came.
        validation = arguments.get("validation")
        classes, standardizer = arguments.get("classes"), arguments.get("standardizer")
        fit_standardizer = bool(arguments.get("fit_standardizer", False))
        validation_split, seed = arguments["validation_split"], arguments["seed"]
        global _prepared
        key = (
            x_sha256,
            y_sha256,
            network.input_size,
            network.output_size,
            network.dtype.str,
            network.loss,
            float(validation_split),
            int(seed),
        )
        with _lock:
            kept = _prepared
        if validation is None and kept is not None and kept[0] == key:
            fitted, data = kept[1], kept[2]
            if classes is None and standardizer is None and fit_standardizer == fitted:
                return data  # another new run
            same_classes = (classes is None and data.classes is None) or (
                classes is not None
                and data.classes is not None
                and list(classes) == list(data.classes)
            )
            given = classes is not None or standardizer is not None
            if given and same_classes and _same_standardizer(standardizer, data.standardizer):
                return data  # a resumed run (its checkpoint holds what this data fitted)
        data = TrainingData.prepare(network, x, y, **arguments)
        if validation is None:
            # A resumed run's too (not handed to a new run: None is no fit_standardizer):
            # the next continuation of the same sweep gets the same data, and the engine
            # packs trials on the same data only (app/engine/pack.py).
            fitted = fit_standardizer if classes is None and standardizer is None else None
            with _lock:
                _prepared = (key, fitted, data)
        return data

    return prepare


def forget() -> None:
    """Drop what is kept (tests; a process that wants its memory back)."""
    global _prepared
    with _lock:
        _arrays.clear()
        _prepared = None
