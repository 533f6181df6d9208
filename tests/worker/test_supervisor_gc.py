"""The supervisor's periodic ``backprop gc`` child: reaped as soon as it ends, not left a
``<defunct>`` process until the next run is due (an hour later by default)."""

from __future__ import annotations

import sys
import time

from app.config import Settings
from app.jobs.supervisor import Supervisor


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return False  # reaped: gone


def test_an_ended_gc_run_is_reaped_at_the_next_check() -> None:
    supervisor = Supervisor(Settings(gc_interval_seconds=3600), host="127.0.0.1", port=1, workers=0)
    supervisor.gc.args = [sys.executable, "-c", "pass"]  # a gc run that ends at once
    supervisor._collect_garbage()  # due from the start: started
    process = supervisor.gc.process
    assert process is not None
    deadline = time.monotonic() + 30
    while not _zombie(process.pid):  # ended, not yet waited for
        assert time.monotonic() < deadline, "the child did not end"
        time.sleep(0.01)
    supervisor._collect_garbage()  # not due again for an hour; reaps it all the same
    assert process.returncode == 0
    assert not _zombie(process.pid)
    assert supervisor.gc.process is process  # and no second run started
