"""The ``s3`` blob store: any S3-compatible object store (AWS S3, MinIO, SeaweedFS, Ceph).

``s3://bucket/prefix``: blob ``abcd...`` is the object ``prefix/ab/cd/abcd...``. The
endpoint of a non-AWS store is ``BACKPROP_S3_ENDPOINT_URL``; credentials and region come
from the standard ``AWS_*`` variables (or any other source boto3 reads). An object PUT
(or a completed multipart upload, for large files) is atomic in S3, so a blob is whole or
absent. A blob that exists already is not uploaded again; it is copied onto itself to
refresh its ``LastModified``, which garbage collection's grace period reads.

:meth:`S3BlobStore.local_path` is the blob's copy in the local cache
(:mod:`app.storage.blob_cache`), verified against its hash when it is downloaded.
Unreachable endpoints, timeouts, throttling and server errors raise
:class:`BlobStoreUnavailable`; a missing object raises :class:`BlobMissing`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.storage.blob_cache import BlobCache
from app.storage.blobs import (
    CHUNK_BYTES,
    BlobMissing,
    BlobRef,
    BlobStoreUnavailable,
    blob_key,
    check_sha256,
    hash_file,
)

T = TypeVar("T")
NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
TRANSFER = TransferConfig(multipart_threshold=64 * 1024**2, multipart_chunksize=64 * 1024**2)


class S3BlobStore:
    """Blobs as objects under ``prefix`` in ``bucket``; local copies in ``cache``."""

    local = False

    def __init__(self, client: Any, bucket: str, prefix: str, cache: BlobCache) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cache = cache
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    @classmethod
    def from_url(
        cls, url: str, *, endpoint_url: str | None, cache_dir: Path, cache_bytes: int
    ) -> S3BlobStore:
        parsed = urlparse(url)
        if not parsed.netloc:
            raise ValueError(f"BACKPROP_BLOB_URL {url!r} names no bucket (s3://bucket/prefix)")
        config = Config(
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            # MinIO, SeaweedFS and Ceph serve buckets as paths, not as host names.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region or ("us-east-1" if endpoint_url else None),
            config=config,
        )
        return cls(client, parsed.netloc, parsed.path, BlobCache(cache_dir, cache_bytes))

    def __repr__(self) -> str:
        return f"S3BlobStore({self.url!r})"

    def key_of(self, sha256: str) -> str:
        key = blob_key(sha256)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, action: Callable[[], T], sha256: str | None = None) -> T:
        """Run one S3 request, translating its failures into the blob store's errors."""
        try:
            return action()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if sha256 is not None and code in NOT_FOUND:
                raise BlobMissing(sha256) from None
            message = f"the object store at {self.url} refused: {code} {error.get('Message', '')}"
            raise BlobStoreUnavailable(message.strip(), sha256) from exc
        except BotoCoreError as exc:  # no connection, timeout, no credentials...
            message = f"the object store at {self.url} is unreachable: {exc}"
            raise BlobStoreUnavailable(message, sha256) from exc

    # --- writing
    def _refresh(self, sha256: str) -> bool:
        """Copy an existing object onto itself (new LastModified); False if absent."""
        key = self.key_of(sha256)
        try:
            self._call(lambda: self.client.head_object(Bucket=self.bucket, Key=key), sha256)
        except BlobMissing:
            return False
        self._call(
            lambda: self.client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": key},
                MetadataDirective="REPLACE",
                Metadata={"refreshed": datetime.now(UTC).isoformat()},
            ),
            sha256,
        )
        return True

    def _write(self, sha256: str, upload: Callable[[str], object]) -> None:
        """``upload(key)`` unless the blob exists; a missing bucket is created once (a
        fresh compose stack or development server starts without one)."""
        try:
            if not self._refresh(sha256):
                self._call(lambda: upload(self.key_of(sha256)))
        except BlobStoreUnavailable:
            # Stores answer a write to a missing bucket differently (SeaweedFS: a 500
            # InternalError, and its HEAD bucket may even answer 200): create it (a no-op
            # when it exists) and write once more; a second failure is the store's.
            self._create_bucket()
            self._call(lambda: upload(self.key_of(sha256)))

    def _create_bucket(self) -> None:
        """Create the bucket; one made meanwhile (BucketAlreadyOwnedByYou...) is fine."""
        try:
            self._call(lambda: self.client.create_bucket(Bucket=self.bucket))
        except BlobStoreUnavailable:
            self._call(lambda: self.client.head_bucket(Bucket=self.bucket))

    def put_file(self, path: Path) -> BlobRef:
        ref = hash_file(path)
        self._write(
            ref.sha256,
            lambda key: self.client.upload_file(str(path), self.bucket, key, Config=TRANSFER),
        )
        return ref

    def put_bytes(self, data: bytes, sha256: str | None = None) -> BlobRef:
        known = sha256 if sha256 is not None else hashlib.sha256(data).hexdigest()
        ref = BlobRef(known, len(data))
        self._write(
            ref.sha256, lambda key: self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        )
        return ref

    # --- reading
    def open(self, sha256: str) -> BinaryIO:
        key = self.key_of(sha256)
        response = self._call(lambda: self.client.get_object(Bucket=self.bucket, Key=key), sha256)
        return cast(BinaryIO, response["Body"])

    def _chunks(self, sha256: str) -> Iterator[bytes]:
        body = self.open(sha256)
        try:
            while True:
                chunk = self._call(lambda: body.read(CHUNK_BYTES), sha256)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def local_path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.cache.get(sha256, lambda: self._chunks(sha256))

    def local_path_checked_later(self, sha256: str) -> tuple[Path, Callable[[], None]]:
        """Checked now: the download into the cache is hashed as it streams."""
        return self.local_path(sha256), _checked

    def exists(self, sha256: str) -> bool:
        key = self.key_of(sha256)
        try:
            self._call(lambda: self.client.head_object(Bucket=self.bucket, Key=key), sha256)
        except BlobMissing:
            return False
        return True

    def delete(self, sha256: str) -> None:
        key = self.key_of(sha256)
        self._call(lambda: self.client.delete_object(Bucket=self.bucket, Key=key), sha256)

    def delete_if_stale(self, sha256: str, cutoff: datetime) -> bool:
        """Delete if last modified before ``cutoff``. S3 has no locks: a refresh landing
        between this check and the delete is lost (a window of one request; GC's grace
        period, not this check, is what protects in-flight commits)."""
        key = self.key_of(sha256)
        try:
            head = self._call(lambda: self.client.head_object(Bucket=self.bucket, Key=key), sha256)
        except BlobMissing:
            return False
        if head["LastModified"] >= cutoff:
            return False
        self.delete(sha256)
        return True

    def iter_blobs(self) -> Iterator[tuple[str, int, datetime]]:
        paginator = self.client.get_paginator("list_objects_v2")
        prefix = f"{self.prefix}/" if self.prefix else ""
        pages = self._call(lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=prefix)))
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if not _is_sha(name) or item["Key"] != self.key_of(name):
                    continue  # not a blob of this store
                yield name, int(item["Size"]), item["LastModified"].astimezone(UTC)

    def _abort(self, key: str, upload_id: str) -> None:
        self._call(
            lambda: self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id
            )
        )

    def remove_stale_temp(self, cutoff: datetime) -> int:
        """Abort multipart uploads begun before ``cutoff`` (a writer that died)."""
        prefix = f"{self.prefix}/" if self.prefix else ""
        listing = self._call(
            lambda: self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        )
        aborted = 0
        for upload in listing.get("Uploads") or []:
            if upload["Initiated"] < cutoff:
                self._abort(upload["Key"], upload["UploadId"])
                aborted += 1
        return aborted


def _checked() -> None:
    """Nothing left to check: the blob was hashed as it was downloaded."""


def _is_sha(name: str) -> bool:
    try:
        check_sha256(name)
    except ValueError:
        return False
    return True
