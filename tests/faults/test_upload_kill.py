"""SIGKILL of the API process in the middle of a large upload, on the file store and on S3.

A real ``backprop serve`` takes a ~94 MB ``.npz`` streamed by a client; its API process
is killed with SIGKILL either while the body is still arriving (``body``: the multipart
parser is spooling it) or once the handler is parsing and storing it (``parse``: its
work folder exists, blobs may be half written). The supervisor restarts the API; then
``backprop gc --grace 0`` runs, as the periodic collection would after the grace period.
Afterwards: no dataset row, no upload work folder, no spooled temp file, no blob, no
partial blob write (file ``.part`` or S3 multipart upload), a sound database, and the
same upload retried succeeds (and its blobs survive a collection).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.storage.blobs import open_blob_store
from app.storage.tables import Dataset
from tests.faults.conftest import MakeCluster
from tests.faults.harness import Cluster, Server
from tests.processes import backprop_command, wait_for, wait_healthy
from tests.s3server import S3Server

pytestmark = pytest.mark.slow

ROWS, FEATURES = 30_000, 784
CHUNK = 1024 * 1024
BOUNDARY = "backprop-kill-test-boundary"


@pytest.fixture(scope="module")
def npz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30,000 x 784 float32 and integer labels (~94 MB, uncompressed npz)."""
    rng = np.random.default_rng(13)
    path = tmp_path_factory.mktemp("upload-kill") / "big.npz"
    np.savez(path, x=rng.random((ROWS, FEATURES), dtype=np.float32), y=rng.integers(0, 10, ROWS))
    return path


def multipart(path: Path, halfway: threading.Event, resume: threading.Event) -> Iterator[bytes]:
    """The ``file`` form field holding ``path``, in 1 MiB chunks; after half of the file
    it sets ``halfway`` and waits for ``resume`` (the test kills the API meanwhile)."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.npz"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    half = path.stat().st_size // 2
    sent = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk
            sent += len(chunk)
            if sent >= half and not halfway.is_set():
                halfway.set()
                resume.wait(timeout=120)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def api_pid(cluster: Cluster) -> int:
    """The pid of serve's API child (``python -m app.api.http_server``)."""
    serve = cluster.procs[-1].pid

    def find() -> int | None:
        for task in Path(f"/proc/{serve}/task").iterdir():
            for child in (task / "children").read_text().split():
                try:
                    cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
                except FileNotFoundError:
                    continue
                if b"app.api.http_server" in cmdline:
                    return int(child)
        return None

    return wait_for(find, what="serve's API process")


def open_files_under(pid: int, folder: Path) -> list[str]:
    """Targets of ``pid``'s file descriptors inside ``folder`` (deleted files included)."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


def post_in_thread(server: Server, key: str, body: Iterator[bytes]) -> threading.Thread:
    """Stream ``body`` to the upload route from a thread; the answer (if any) is ignored:
    the connection dies with the API."""

    def send() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                f"{server.base_url}/v1/datasets/upload",
                content=body,
                headers={
                    "Authorization": f"Bearer {key}",
                    "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                },
                timeout=120,
            )

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def dataset_rows(cluster: Cluster) -> int:
    with cluster.probe.db.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(Dataset)) or 0)


def partial_writes(settings: Settings, s3: S3Server | None) -> list[str]:
    """Unfinished blob writes: ``.part`` files of the file store, or S3 multipart uploads."""
    if s3 is None:
        root = Path(settings.blob_url.removeprefix("file://"))
        return [str(p) for p in (root / ".tmp").glob("*")] if (root / ".tmp").exists() else []
    bucket, _, prefix = settings.blob_url.removeprefix("s3://").partition("/")
    client = s3.client()
    listed = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)  # type: ignore[attr-defined]
    return [str(upload["Key"]) for upload in listed.get("Uploads", [])]


@pytest.mark.parametrize("kill_at", ["body", "parse"])
@pytest.mark.parametrize("store", ["file", pytest.param("s3", marks=pytest.mark.s3)])
def test_sigkill_mid_upload_leaves_nothing_and_retry_succeeds(
    store: str,
    kill_at: str,
    npz_file: Path,
    sqlite_url: str,
    make_cluster: MakeCluster,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    s3: S3Server | None = request.getfixturevalue("s3") if store == "s3" else None
    spool = tmp_path / "spool"  # the API's TMPDIR: where the multipart parser spools
    spool.mkdir()
    cluster = make_cluster(
        sqlite_url,
        blob_url=s3.new_url() if s3 else None,
        extra_env={**(s3.env() if s3 else {}), "TMPDIR": str(spool)},
    )
    settings = Settings(database_url=sqlite_url, blob_url=cluster.env()["BACKPROP_BLOB_URL"])
    work_root = cluster.workdir / "data" / "tmp" / "uploads"
    server = cluster.serve(workers=0, BACKPROP_GC_INTERVAL_SECONDS="0")
    first_api = api_pid(cluster)

    halfway, resume = threading.Event(), threading.Event()
    sender = post_in_thread(server, cluster.key, multipart(npz_file, halfway, resume))
    if kill_at == "body":
        assert halfway.wait(timeout=120), "the client never sent half of the body"
        spooled = wait_for(
            lambda: open_files_under(first_api, spool), what="the API to spool the body"
        )
        assert spooled  # the kill lands while the body is on its way into this file
    else:
        resume.set()  # send the whole body at once
        working = wait_for(
            lambda: list(work_root.glob("upload-*")),
            what="the upload's work folder",
            interval=0.002,
            timeout=120,
        )
        assert working
    os.kill(first_api, signal.SIGKILL)
    resume.set()
    sender.join(timeout=120)
    assert dataset_rows(cluster) == 0
    if kill_at == "parse":  # the dead process's folder is there until the next start
        assert list(work_root.glob("upload-*"))

    wait_for(lambda: api_pid(cluster) != first_api, what="the supervisor to restart the API")
    wait_healthy(server.base_url, cluster.procs[-1].popen, logs=cluster.procs[-1].tail)
    gc = subprocess.run(
        backprop_command("gc", "--grace", "0"),
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert gc.returncode == 0, gc.stdout + gc.stderr

    blobs = open_blob_store(settings)
    assert dataset_rows(cluster) == 0
    assert list(work_root.iterdir()) == []  # the restart removed the dead upload's folder
    # Spooled parts never had a name to leave behind (serve keeps its metrics folder here).
    assert [p for p in spool.iterdir() if not p.name.startswith("backprop-metrics-")] == []
    assert list(blobs.iter_blobs()) == []
    assert partial_writes(settings, s3) == []
    assert cluster.probe.invariant_violations() == []

    client = cluster.client()
    with npz_file.open("rb") as handle:
        dataset = client.expect(
            201,
            "POST",
            "/v1/datasets/upload",
            files={"file": ("big.npz", handle, "application/octet-stream")},
            data={"name": "retried"},
            timeout=300,
        )
    assert (dataset["n_samples"], dataset["n_features"]) == (ROWS, FEATURES)
    assert dataset_rows(cluster) == 1
    gc = subprocess.run(
        backprop_command("gc", "--grace", "0"), env=cluster.env(), timeout=300, check=True
    )
    kept = {sha for sha, _, _ in blobs.iter_blobs()}
    with cluster.probe.db.read_session() as session:
        row = session.scalars(select(Dataset)).one()
    assert {row.x_sha256, row.y_sha256} <= kept
    assert list(work_root.iterdir()) == []
    assert cluster.probe.invariant_violations() == []
