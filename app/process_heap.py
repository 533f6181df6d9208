"""Short garbage-collector pauses in the long-running processes (the API, each worker).

CPython's cyclic collector walks every object it tracks on a full (generation-2) pass. Once
FastAPI, pydantic, SQLAlchemy and NumPy are loaded a Backprop process tracks ~140,000
objects (modules, classes, functions, schemas, compiled statements), nearly all of them
alive until the process exits, and a full pass over them took 85-150 ms on the 2-core
benchmark machine (BENCHMARKS.md §9, "sweeps-s16"). The collector starts one whenever
enough new objects have survived, so the pause lands on whatever runs then: a request on
the API's one event loop (every request waits), a training step in a worker.

:func:`freeze_startup_heap` moves the objects alive once a process has started into the
permanent generation that collections skip (``gc.freeze``, which the Python documentation
describes for objects that live as long as the process); everything created afterwards
is collected as before. It is called by the process entry points only (``backprop
worker``, the API server's app factory), never on import: a test process that builds many
apps must not keep each one's objects for ever.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect what startup left behind, then freeze what is alive. Returns the number of
    objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
