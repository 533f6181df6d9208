"""The worker's next claim, made inside the transaction that ends its last trials.

A trial's final commit waits, inside its transaction, for the blobs its rows refer to
(its model, and a paused trial's checkpoint), which the blob writer is still writing
(``app.jobs.attempt.PendingBlob``): ~1 ms each on a local disk, so a halving rung's pack
of 4 ends with ~5 ms of them (8 blobs), of which its transaction waited ~1.5 ms, a
halving sweep's worker ~40 ms per sweep (a grid's: ~3 ms). Claiming the next pack in that
transaction, after the trials' rows are written and before the wait, does the claim
while the blobs are written, and saves the claim's own transaction (its wait for
SQLite's write lock, its commit). The claim commits or rolls back with the endings: a
worker that dies before the commit leaves the next jobs queued. One that dies right
after it holds them unstarted, as after any claim: they wait for their leases to expire
and count one more attempt. An ending whose claim found nothing queued spares the
worker's next claim too (it looks with a read first, as an idle worker does).

On SQLite the claim is what ``claim_pack`` does in its own transaction. On PostgreSQL it
reads and takes rows as that does too (``SKIP LOCKED``, the sweep's turn tried, never
waited for), so holding the ended trials' rows and their sweep's meanwhile cannot
deadlock. What it locks (the queue's head, read even when a longer trial is taken in its
place; the sweep's turn) stays locked until the ending commits, after its blobs are
written: meanwhile other claimers pass over that row, and a cancel of it waits.
"""

from __future__ import annotations

import threading

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.jobs.pack_claim import claim_pack_in
from app.jobs.queue import Claim


class NextClaim:
    """One claim for the worker, taken in the transaction of the first ending that offers
    (:meth:`in_transaction`) and kept in ``claims`` when that transaction commits (its
    session's ``after_commit``: whatever the ending does next, a later transaction of
    its own or an error); the worker trains ``claims`` next instead of claiming again.
    None taken (none queued, the worker stopping, no ending offered, the transaction
    rolled back): the worker claims as before."""

    def __init__(
        self, *, worker_id: str, lease_seconds: float, size: int, stopping: threading.Event
    ) -> None:
        self._worker_id = worker_id
        self._lease_seconds = lease_seconds
        self._size = size
        self._stopping = stopping
        self.claims: list[Claim] = []
        self.tried = False  # an ending's committed transaction looked for the next job

    def in_transaction(self, session: Session) -> None:
        """Claim in ``session``'s transaction (an ending's), unless claimed already or the
        worker is stopping; a retried transaction claims anew."""
        if self.claims or self._stopping.is_set():
            return
        claims = claim_pack_in(
            session, worker_id=self._worker_id, lease_seconds=self._lease_seconds, size=self._size
        )
        event.listen(session, "after_commit", lambda _: self._hold(claims), once=True)

    def _hold(self, claims: list[Claim]) -> None:
        self.tried = True
        if not self.claims:
            self.claims = claims
