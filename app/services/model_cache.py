"""A bounded LRU of loaded engine models, so predict reads no weights from the database.

An entry remembers its owner (for the ownership check without a query) and when its row
was last seen to exist; after ``Settings.model_recheck_seconds``
(``BACKPROP_MODEL_RECHECK_SECONDS``) the predict service checks again (a cheap primary-key
query, not the weights), so a model deleted through another API process stops answering
there within that bound. Deleting through this process drops it at once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from app.engine.model import Model


@dataclass
class CachedModel:
    owner_id: int
    model: Model
    input_size: int
    parameter_count: int
    checked_at: float  # time.monotonic() when the row was last known to exist

    def is_fresh(self, model_recheck_seconds: float) -> bool:
        """True while the row was seen less than ``model_recheck_seconds`` ago."""
        return time.monotonic() - self.checked_at < model_recheck_seconds


class ModelCache:
    """Thread-safe LRU keyed by model id, holding at most ``size`` models."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, CachedModel] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, model_id: str) -> CachedModel | None:
        with self._lock:
            entry = self._entries.get(model_id)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(model_id)
            self.hits += 1
            return entry

    def put(self, model_id: str, entry: CachedModel) -> None:
        with self._lock:
            self._entries[model_id] = entry
            self._entries.move_to_end(model_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def drop(self, model_id: str) -> None:
        with self._lock:
            self._entries.pop(model_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, model_id: object) -> bool:
        with self._lock:
            return model_id in self._entries
