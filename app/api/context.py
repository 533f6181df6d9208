"""Per-app state: settings, the database and blob store (opened on first use), caches,
metrics."""

from __future__ import annotations

import threading

from starlette.requests import HTTPConnection

from app.api.auth import KeyCache
from app.api.prometheus import MeteredModelCache, Metrics
from app.api.singleflight import SingleFlight
from app.api.streams import StreamLimiter
from app.config import Settings
from app.services.keys import Caller
from app.services.model_cache import CachedModel
from app.storage.blobs import BlobStore, open_blob_store
from app.storage.database import Database


class AppContext:
    """One per app. The database is created lazily so importing app.main touches no DB."""

    def __init__(
        self, settings: Settings, database: Database | None = None, blobs: BlobStore | None = None
    ) -> None:
        self.settings = settings
        self._database = database
        self._owns_database = database is None
        self._lock = threading.Lock()
        self._blobs = blobs
        self.key_cache = KeyCache(settings.key_cache_seconds, settings.db_outage_grace_seconds)
        self.metrics = Metrics()
        self.model_cache = MeteredModelCache(settings.model_cache_size, self.metrics)
        # Concurrent misses share one read: key lookups by key hash, model loads and
        # freshness checks by (owner id, model id).
        self.key_lookups: SingleFlight[str, Caller | None] = SingleFlight()
        self.model_loads: SingleFlight[tuple[int, str], CachedModel] = SingleFlight()
        self.streams = StreamLimiter(settings.max_streams_per_owner)

    @property
    def database(self) -> Database:
        if self._database is None:
            with self._lock:
                if self._database is None:
                    self.settings.make_data_dir()
                    self._database = Database(self.settings.database_url)
        return self._database

    @property
    def blobs(self) -> BlobStore:
        if self._blobs is None:
            with self._lock:
                if self._blobs is None:
                    self._blobs = open_blob_store(self.settings)
        return self._blobs

    def close(self) -> None:
        """Dispose of the database engine if this context made it; retire this process's
        live metrics."""
        self.metrics.close()
        if self._owns_database and self._database is not None:
            self._database.dispose()
            self._database = None


def context(connection: HTTPConnection) -> AppContext:
    ctx: AppContext = connection.app.state.backprop
    return ctx
