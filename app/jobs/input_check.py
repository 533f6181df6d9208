"""The hash check of a memory-mapped input blob, run in a thread beside the first chunks.

A worker's first read of a dataset hashes the whole blob (SHA-256) before trusting it;
for a large dataset that is seconds of one core. A row-streaming attempt maps the blob
at once (:func:`app.storage.blob_arrays.load_array_checked_later`) and lets this thread
hash it while the forward pass runs on the other core; nothing computed from the rows is
stored (an output piece, the final outputs or metrics) before :meth:`InputCheck.wait`
has returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from app.jobs.attempt_base import StartError
from app.storage.blobs import BlobCorrupt, BlobMissing


class InputCheck:
    """Run ``check`` (raising BlobCorrupt / BlobMissing) in a thread; ``what`` names the
    input in the error."""

    def __init__(self, check: Callable[[], None], what: str) -> None:
        self._what = what
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(check,), name="input-check")
        self._thread.start()

    def _run(self, check: Callable[[], None]) -> None:
        try:
            check()
        except BaseException as exc:  # handed to wait(), in the attempt's thread
            self._error = exc

    def wait(self) -> None:
        """Return once the input checked out. StartError naming the input when it is
        corrupt or gone; any other error of the check (an unreachable disk) as is."""
        self._thread.join()
        error = self._error
        if isinstance(error, BlobCorrupt | BlobMissing):
            raise StartError(f"{self._what}: {error.message}") from None
        if error is not None:
            raise error

    def join(self) -> None:
        """Wait for the thread without looking at its outcome (an attempt that ends early)."""
        self._thread.join()
