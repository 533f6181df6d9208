"""Crash-test hook: make a worker die abruptly at a named point.

``BACKPROP_TEST_CRASH_AT=<point>[,<point>...]`` makes :func:`crash_point` end the process
with ``os._exit(137)`` (what SIGKILL looks like) — no ``finally``, no flush, no release —
so tests can prove that each step of a job survives a crash. Points used by the worker:

- ``before_checkpoint``       an epoch ended, the checkpoint is about to be written
- ``checkpoint_uncommitted``  inside the checkpoint transaction, before its commit
- ``after_checkpoint``        right after the checkpoint committed
- ``before_final_commit``     inside the final transaction (model + succeeded), before commit
- ``after_final_commit``      right after that commit
- ``epoch:<n>``               at the end of epoch n (1-based)
- ``always``                  at the first epoch end of every attempt: a poison job

``BACKPROP_TEST_CANCEL_AT=<point>[:keep][,...]`` makes the worker request a cancel of its
own job at ``point`` (as a client's request landing at that moment would; ``:keep`` asks
to keep the model), to test the narrow windows deterministically:

- ``last_epoch``           at the end of the job's last epoch (no batch left to stop)
- ``before_final_commit``  after the model is stored, before the final transaction
- ``before_release``       after the final lease check, before a stopped job's release
- ``before_time_limit``    after the final lease check, before a time-limit failure

The variables are read once, at import; when both are unset :data:`ENABLED` is False and
callers skip building point names altogether.
"""

from __future__ import annotations

import os

ENV = "BACKPROP_TEST_CRASH_AT"
CANCEL_ENV = "BACKPROP_TEST_CANCEL_AT"
EXIT_CODE = 137


def _parse(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _parse_cancels(value: str) -> dict[str, bool]:
    """``point[:keep]`` items -> {point: keep_model}."""
    return {
        part.removesuffix(":keep"): part.endswith(":keep")
        for part in _parse(value)
        if part.removesuffix(":keep")
    }


POINTS: frozenset[str] = _parse(os.environ.get(ENV, ""))
CANCEL_POINTS: dict[str, bool] = _parse_cancels(os.environ.get(CANCEL_ENV, ""))
ENABLED: bool = bool(POINTS or CANCEL_POINTS)


def crash_point(name: str) -> None:
    """Die now (exit 137) if ``name`` is one of the configured crash points."""
    if ENABLED and name in POINTS:
        os._exit(EXIT_CODE)


def crash_at_epoch_end(epoch: int, first_of_attempt: bool) -> None:
    """The ``epoch:<n>`` and ``always`` points, at the end of epoch ``epoch``."""
    if not ENABLED:
        return
    if first_of_attempt:
        crash_point("always")
    crash_point(f"epoch:{epoch}")
