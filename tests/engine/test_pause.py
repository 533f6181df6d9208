"""A run paused at ``loop.stop_at`` (a sweep's rung) and resumed from its checkpoint ends
bit-identical to an uninterrupted run: the schedule and early-stopping weights see the
whole run, and the pause restores nothing."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from app.engine.training import EarlyStoppingOptions, Trainer
from tests.engine.test_checkpoint import EPOCHS, setup, strip


def _paused_then_resumed(stop_at: int, **overrides: object) -> Trainer:
    net, x, y, options = setup(**overrides)  # type: ignore[arg-type]
    first = Trainer(net, x, y, options)
    first.loop.stop_at = stop_at
    result = first.run()
    assert not result.stopped and result.epochs_run == stop_at
    resumed = Trainer.resume(first.checkpoint(), x, y, history=first.history)
    assert resumed.epoch == stop_at
    resumed.run()
    return resumed


def test_a_paused_run_continues_where_it_stopped() -> None:
    net, x, y, options = setup()
    whole = Trainer(net, x, y, options)
    whole.run()
    resumed = _paused_then_resumed(5)
    assert resumed.epoch == EPOCHS
    assert np.array_equal(resumed.network.params, whole.network.params)
    assert strip(resumed.history) == strip(whole.history)
    # The rows trained are those of EPOCHS epochs: continued, not restarted.
    assert resumed.samples_trained == whole.samples_trained


def test_a_pause_keeps_the_current_weights_with_early_stopping() -> None:
    stopping = EarlyStoppingOptions(patience=EPOCHS, min_delta=0.0)
    net, x, y, options = setup(early_stopping=stopping)
    whole = Trainer(net, x, y, options)
    whole.run()
    resumed = _paused_then_resumed(4, early_stopping=stopping)
    assert np.array_equal(resumed.network.params, whole.network.params)
    assert np.array_equal(resumed.best_params, whole.best_params)


CONTINUED = [
    ("adam", {}),
    ("adam", {"diagnostics": True}),
    ("adam", {"early_stopping": EarlyStoppingOptions(patience=3, min_delta=0.0)}),
    ("momentum", {"shuffle": False, "l2": 0.0, "clip_norm": None}),
    ("sgd", {"validation_split": 0.0}),
]


@pytest.mark.parametrize(("optimizer", "overrides"), CONTINUED, ids=lambda v: str(v)[:40])
def test_a_paused_trainer_continued_in_place_is_the_one_resumed_from_its_checkpoint(
    optimizer: str, overrides: dict[str, Any]
) -> None:
    """What a worker that kept a paused trial's trainer relies on
    (app/jobs/paused_trainers.py): continuing the very trainer that paused, with a later
    ``stop_at``, trains exactly as the one resumed from the checkpoint it wrote (with the
    history as job_epochs hands it back: through JSON)."""
    net, x, y, options = setup(optimizer, **overrides)
    kept = Trainer(net, x, y, options)
    kept.loop.stop_at = 4
    kept.run()
    history = json.loads(json.dumps(kept.history))
    resumed = Trainer.resume(kept.checkpoint(), x, y, history=history)
    for trainer in (kept, resumed):
        trainer.loop.stop_at = 8  # the next rung, then the rest
        trainer.run()
        trainer.loop.stop_at = None
    ends = [trainer.run() for trainer in (kept, resumed)]
    assert np.array_equal(kept.network.params, resumed.network.params)
    assert np.array_equal(kept.best_params, resumed.best_params)
    assert np.array_equal(ends[0].model.network.params, ends[1].model.network.params)
    assert strip(ends[0].history) == strip(ends[1].history)
    assert kept.samples_trained == resumed.samples_trained
    assert (kept.epoch, kept.progress.early_stopped) == (
        resumed.epoch,
        resumed.progress.early_stopped,
    )
