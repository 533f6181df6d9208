"""A run paused at ``loop.stop_at`` (a sweep's rung) and resumed from its checkpoint ends
bit-identical to an uninterrupted run: the schedule and early-stopping weights see the
whole run, and the pause restores nothing."""

from __future__ import annotations

import numpy as np

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
