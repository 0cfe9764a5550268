"""Blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW): ``S3BlobStore``, through boto3.

Layer 5 (the server; boto3 is the ``server`` extra's). It keeps every promise of
``blobs.BlobStore`` (the module docstring there); how it keeps them here:

* Layout: ``s3://bucket/prefix`` holds the blob ``sha`` under ``<prefix>/ab/cd/<sha256>``, the disk
  layout, so a media directory copied into a bucket (``aws s3 sync``) is a valid store.
* Credentials, region and profile come from boto3's standard chain (``AWS_ACCESS_KEY_ID``,
  ``AWS_PROFILE``, ``~/.aws/credentials``, ``AWS_REGION``, instance roles, ...); ``endpoint_url``
  (``--s3-endpoint-url``, or boto3's ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``) names an
  on-site store, which is then addressed path-style.
* ``put``: a blob of at most ``multipart_threshold`` bytes is held in memory, hashed, and sent with
  one ``PutObject`` only after its sha256 matched. A larger one streams as a multipart upload under
  its final key, in parts of ``multipart_threshold`` bytes (larger when the size limit would need more than
  S3's 10000 parts), hashed as the parts go out; the upload
  is completed only when the sha256 matches, and aborted otherwise (a mismatch, 413, the client
  going away, a storage fault). An unfinished multipart upload is invisible to readers, so no reader
  ever sees a partial or wrong object. Every part and small object carries its Content-MD5, so the
  store itself refuses bytes damaged on the way. Memory per upload: about two parts.
* A process killed mid-upload leaves an unfinished multipart upload (parts the bucket keeps and
  bills). ``sweep`` (run by ``wandblite server`` at start) aborts the uploads under the prefix whose
  last part (or start, without parts) is older than ``stale_seconds``: an upload in progress adds
  a part at least every ``multipart_threshold`` bytes, so only dead ones are that old. A bucket
  lifecycle rule ``AbortIncompleteMultipartUpload`` is a good second net for a store that is
  rarely restarted.
* Faults become the server's one error shape: the store refused (access denied, no such bucket,
  ...) is 502 ``storage_error``; the store cannot be reached (connection refused, timeouts, no
  credentials) is 503 ``storage_unavailable``. Both name the bucket and what was being done.
* ``presign`` (with ``presign=True``, ``--s3-presign``) gives a GET URL valid for
  ``PRESIGN_SECONDS`` that makes the store answer with the server's content type and disposition,
  so the bytes go from the bucket to the client; the client fetches them from the bucket's origin,
  never the server's.

Thread-safe: one boto3 client (thread-safe by boto3's contract) shared by all worker threads.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, cast

from wandblite.server.blobs import (
    S3_SCHEME,
    STALE_TMP_SECONDS,
    BlobStore,
    checked_chunks,
    verify_sha256,
)
from wandblite.server.errors import ApiError, not_found

__all__ = ["DEFAULT_MULTIPART_THRESHOLD", "MIN_PART_BYTES", "PRESIGN_SECONDS", "S3BlobStore", "parse_s3_url"]

#: Blobs larger than this go up as multipart uploads in parts of this size: 16 MiB.
DEFAULT_MULTIPART_THRESHOLD = 16 << 20
#: S3's smallest part (all but the last), which MinIO and Ceph enforce too: 5 MiB.
MIN_PART_BYTES = 5 << 20
#: How long a presigned download URL stays valid: 15 minutes.
PRESIGN_SECONDS = 900
#: How many existence checks (HEAD) run at once when a batch asks about many blobs.
_HEAD_WORKERS = 16
_MAX_PARTS = 10_000
#: The variables by which boto3 itself names an endpoint other than AWS.
_ENDPOINT_VARS = {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}
_HEAD_CODES = {"403": "AccessDenied", "404": "NotFound", "400": "BadRequest", "301": "PermanentRedirect"}
_BLOB_KEY = re.compile(r"(?:^|/)[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}$")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")`` (the prefix may be empty)."""
    if not url.startswith(S3_SCHEME):
        raise ValueError(f"{url!r} is not an s3://bucket/prefix location")
    bucket, _, prefix = url[len(S3_SCHEME):].partition("/")
    if not bucket:
        raise ValueError(f"{url!r} names no bucket: use s3://bucket/prefix")
    return bucket, prefix.strip("/")


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


class S3BlobStore(BlobStore):
    """Blobs as objects of one bucket under one prefix (see the module docstring)."""

    def __init__(self, url: str, endpoint_url: str | None = None, presign: bool = False,
                 multipart_threshold: int | None = None, stale_seconds: float = STALE_TMP_SECONDS,
                 client: Any = None) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self.location = S3_SCHEME + self.bucket + (f"/{self.prefix}" if self.prefix else "")
        self.endpoint_url = endpoint_url
        self.presign_enabled = presign
        threshold = DEFAULT_MULTIPART_THRESHOLD if multipart_threshold is None else multipart_threshold
        if threshold < MIN_PART_BYTES:
            raise ValueError(f"the multipart threshold of {threshold} bytes is below S3's smallest part "
                             f"({MIN_PART_BYTES} bytes, 5M)")
        self.multipart_threshold = threshold
        self.stale_seconds = stale_seconds
        self.client = client if client is not None else self._client(endpoint_url)
        from botocore.exceptions import BotoCoreError, ClientError

        self._client_error, self._botocore_error = ClientError, BotoCoreError

    @staticmethod
    def _client(endpoint_url: str | None) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10, read_timeout=120, max_pool_connections=64,
            # On-site stores differ in which flexible checksums they take; Content-MD5 (sent by
            # put) is the one they all check.
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
            # An on-site store is addressed path-style (http://minio:9000/bucket/key), as MinIO and
            # Ceph expect: their buckets rarely have DNS names. AWS itself keeps boto3's choice.
            s3={"addressing_style": "path"} if endpoint_url or _ENDPOINT_VARS & os.environ.keys() else {},
        )
        return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)

    def key(self, sha: str) -> str:
        # The caller validated sha as 64 hex digits.
        tail = f"{sha[:2]}/{sha[2:4]}/{sha}"
        return f"{self.prefix}/{tail}" if self.prefix else tail

    # ---------------------------------------------------------------- faults
    def _code(self, exc: Exception) -> str:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        # A HEAD's error has no body, so only its status: name the usual ones as S3 would.
        return _HEAD_CODES.get(code, code)

    @contextlib.contextmanager
    def _faults(self, what: str) -> Iterator[None]:
        """botocore's exceptions as the server's 502/503 ``ApiError`` naming the bucket and ``what``."""
        try:
            yield
        except self._client_error as exc:
            raise ApiError(502, "storage_error", f"the object store {self.location} refused to {what}: "
                                                 f"{self._code(exc) or 'error'} ({exc})") from exc
        except self._botocore_error as exc:
            raise ApiError(503, "storage_unavailable", f"the object store {self.location} could not be used to "
                                                       f"{what}: {exc}") from exc

    def _missing(self, exc: Exception) -> bool:
        return self._code(exc) in ("404", "NoSuchKey", "NotFound")

    # ---------------------------------------------------------------- reads
    def _head(self, sha: str) -> dict[str, Any] | None:
        with self._faults(f"look up the blob {sha}"):
            try:
                return cast(dict[str, Any], self.client.head_object(Bucket=self.bucket, Key=self.key(sha)))
            except self._client_error as exc:
                if not self._missing(exc):
                    raise
        # A HEAD cannot tell a missing object from a missing bucket: a gone bucket is a fault, not "absent".
        self.check()
        return None

    def exists(self, sha: str) -> bool:
        return self._head(sha) is not None

    def stored(self, shas: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(shas))
        if len(wanted) <= 1:
            return {s for s in wanted if self.exists(s)}
        with ThreadPoolExecutor(min(_HEAD_WORKERS, len(wanted))) as pool:
            return {s for s, ok in zip(wanted, pool.map(self.exists, wanted)) if ok}

    def size(self, sha: str) -> int | None:
        head = self._head(sha)
        return None if head is None else int(head["ContentLength"])

    def open(self, sha: str, start: int = 0, length: int | None = None) -> IO[bytes]:
        extra = {}
        if start or length is not None:
            extra["Range"] = f"bytes={start}-{'' if length is None else start + length - 1}"
        with self._faults(f"read the blob {sha}"):
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=self.key(sha), **extra)
            except self._client_error as exc:
                if self._missing(exc):
                    raise not_found(f"no media blob {sha}")
                raise
        return cast(IO[bytes], answer["Body"])

    def presign(self, sha: str, content_type: str, disposition: str | None) -> str | None:
        if not self.presign_enabled:
            return None
        params = {"Bucket": self.bucket, "Key": self.key(sha), "ResponseContentType": content_type}
        if disposition:
            params["ResponseContentDisposition"] = disposition
        with self._faults(f"presign the blob {sha}"):
            return str(self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=PRESIGN_SECONDS))

    def check(self) -> None:
        with self._faults("reach the bucket"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except self._client_error as exc:
                if self._missing(exc):
                    raise ApiError(502, "storage_error", f"the object store has no bucket {self.bucket!r} "
                                                         f"({self.location}): NoSuchBucket") from exc
                raise

    # ---------------------------------------------------------------- writes
    def delete(self, sha: str) -> bool:
        if not self.exists(sha):
            return False
        with self._faults(f"delete the blob {sha}"):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(sha))
        return True

    def put(self, sha: str, chunks: Iterable[bytes], limit: int) -> int:
        h = hashlib.sha256()
        if self.exists(sha):
            size = sum(len(c) for c in checked_chunks(chunks, limit, h))
            verify_sha256(h, sha)
            return size
        # S3 takes at most 10000 parts: a limit beyond 10000 thresholds needs bigger parts.
        key, part = self.key(sha), max(self.multipart_threshold, -(-limit // _MAX_PARTS))
        buf = bytearray()
        size = 0
        upload: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            for chunk in checked_chunks(chunks, limit, h):
                size += len(chunk)
                buf += chunk
                # Strictly more than one part's worth: a blob of exactly the threshold stays one PUT,
                # and every multipart upload ends with a non-empty last part.
                while len(buf) > part:
                    if upload is None:
                        with self._faults(f"start the upload of {sha}"):
                            upload = str(self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"])
                    parts.append(self._upload_part(sha, key, upload, len(parts) + 1, bytes(buf[:part])))
                    del buf[:part]
            verify_sha256(h, sha)
            data = bytes(buf)
            if upload is None:
                with self._faults(f"store the blob {sha}"):
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentMD5=_md5(data))
                return size
            parts.append(self._upload_part(sha, key, upload, len(parts) + 1, data))
            with self._faults(f"complete the upload of {sha}"):
                self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload,
                                                      MultipartUpload={"Parts": parts})
            upload = None
            return size
        finally:
            if upload is not None:
                self._abort(key, upload)

    def _upload_part(self, sha: str, key: str, upload: str, number: int, data: bytes) -> dict[str, Any]:
        with self._faults(f"upload part {number} of {sha}"):
            answer = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=number,
                                             Body=data, ContentMD5=_md5(data))
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _abort(self, key: str, upload: str) -> bool:
        """Abort an unfinished upload; a failure here is left to ``sweep`` (never masks the first error)."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            return True
        except (self._client_error, self._botocore_error):
            return False

    def unfinished_uploads(self) -> list[dict[str, Any]]:
        """The unfinished multipart uploads of blobs under the prefix: ``[{"Key", "UploadId", "Initiated"}]``."""
        out: list[dict[str, Any]] = []
        prefix = f"{self.prefix}/" if self.prefix else ""
        with self._faults("list unfinished uploads"):
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
                out.extend(u for u in page.get("Uploads", []) if _BLOB_KEY.search(u["Key"]))
        return out

    def sweep(self) -> int:
        cutoff = time.time() - self.stale_seconds
        aborted = 0
        for u in self.unfinished_uploads():
            last = u["Initiated"].timestamp()
            if last >= cutoff:
                continue
            with self._faults(f"list the parts of the upload of {u['Key']}"):
                try:
                    pages = self.client.get_paginator("list_parts").paginate(
                        Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"])
                    last = max([last, *(p["LastModified"].timestamp() for page in pages
                                        for p in page.get("Parts", []))])
                except self._client_error as exc:
                    if self._code(exc) == "NoSuchUpload":
                        continue  # finished or aborted meanwhile
                    raise
            if last < cutoff and self._abort(u["Key"], u["UploadId"]):
                aborted += 1
        return aborted
