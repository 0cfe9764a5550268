"""The contract of ``blobs.BlobStore``, run against both backends: a media directory and an S3 bucket.

One test class, one parametrised fixture (as ``test_store_contract.py`` does for the databases):
every test runs on a fresh directory and on a fresh bucket of a real S3-compatible server on
127.0.0.1 (moto's standalone server, the ``s3`` fixture). What the contract says is in the module
docstring of ``wandblite/server/blobs.py``; how the bucket keeps it, in ``blobstore_s3.py``.

"Debris" is what an unfinished upload leaves (a temporary file, an unfinished multipart upload);
"visible" is what a reader could find under a blob's name.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from wandblite.server.blobs import BlobStore, DiskBlobStore
from wandblite.server.blobstore_s3 import S3BlobStore
from wandblite.server.errors import ApiError
from wandblite.server.serve import open_blob_store

from .conftest import S3_THRESHOLD, S3Server, clean_env, free_port

LIMIT = 64 << 20
#: From nothing to past two multipart parts; the threshold itself stays one PutObject.
SIZES = [0, 1, 1000, (1 << 20) + 7, S3_THRESHOLD - 1, S3_THRESHOLD, S3_THRESHOLD + 1, 2 * S3_THRESHOLD + 12345]


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(size * 7919 + seed).randbytes(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pieces(data: bytes, n: int = 300_007) -> Iterator[bytes]:
    """``data`` in irregular pieces, as an HTTP body arrives (nothing at all for no bytes)."""
    for i in range(0, len(data), n):
        yield data[i:i + n]


def breaks_off(data: bytes, after: int) -> Iterator[bytes]:
    """A body whose client goes away after ``after`` bytes."""
    yield from pieces(data[:after])
    raise ConnectionResetError("the client went away mid-body")


def visible(blobs: BlobStore, s3: S3Server | None) -> list[str]:
    """Every blob a reader could find."""
    if isinstance(blobs, S3BlobStore):
        assert s3 is not None
        return [k.rsplit("/", 1)[-1] for k in s3.keys(blobs.bucket, blobs.prefix)]
    assert isinstance(blobs, DiskBlobStore)
    return sorted(p.name for p in blobs.root.glob("??/??/*"))


def debris(blobs: BlobStore) -> list[Any]:
    """What unfinished uploads left behind."""
    if isinstance(blobs, S3BlobStore):
        return blobs.unfinished_uploads()
    assert isinstance(blobs, DiskBlobStore)
    tmp = blobs.root / "tmp"
    return sorted(tmp.iterdir()) if tmp.is_dir() else []


def leave_dead_upload(blobs: BlobStore, name: str, data: bytes) -> None:
    """What a process killed mid-upload leaves: a temporary file, or a multipart upload with one part."""
    if isinstance(blobs, S3BlobStore):
        up = blobs.client.create_multipart_upload(Bucket=blobs.bucket, Key=blobs.key(name))["UploadId"]
        blobs.client.upload_part(Bucket=blobs.bucket, Key=blobs.key(name), UploadId=up, PartNumber=1, Body=data)
        return
    assert isinstance(blobs, DiskBlobStore)
    (blobs.root / "tmp").mkdir(parents=True, exist_ok=True)
    (blobs.root / "tmp" / f"{name}.dead").write_bytes(data)


@pytest.fixture(params=["disk", "s3"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def s3_or_none(kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> S3Server | None:
    if kind != "s3":
        return None
    s3: S3Server = request.getfixturevalue("s3")
    for k, v in s3.env.items():  # the standard AWS variables, as a server reads them
        monkeypatch.setenv(k, v)
    return s3


def make_store(kind: str, s3: S3Server | None, tmp_path: Path, **settings: Any) -> BlobStore:
    if kind == "s3":
        assert s3 is not None
        return open_blob_store(f"s3://{s3.bucket()}/some/prefix", s3_endpoint_url=s3.endpoint,
                               s3_multipart_threshold=S3_THRESHOLD, **settings)
    return open_blob_store(tmp_path / "media", **settings)


@pytest.fixture
def blobs(kind: str, s3_or_none: S3Server | None, tmp_path: Path) -> BlobStore:
    store = make_store(kind, s3_or_none, tmp_path)
    store.check()
    return store


class TestBlobStoreContract:
    def test_every_size_round_trips_and_leaves_no_debris(self, blobs: BlobStore, s3_or_none: S3Server | None) -> None:
        names = []
        for size in SIZES:
            data = payload(size)
            name = sha(data)
            names.append(name)
            assert not blobs.exists(name) and blobs.size(name) is None
            assert blobs.put(name, pieces(data), LIMIT) == size
            assert blobs.exists(name) and blobs.size(name) == size
            with blobs.open(name) as f:
                got = b"".join(iter(lambda: f.read(1 << 20), b""))  # noqa: B023 - f is read right here
            assert got == data, f"{size} bytes came back different"
            assert blobs.read_bytes(name) == data
            assert debris(blobs) == []
        assert sorted(visible(blobs, s3_or_none)) == sorted(names)
        assert blobs.stored([*names, "f" * 64]) == set(names)

    def test_a_window_of_a_blob_is_read_from_its_start(self, blobs: BlobStore) -> None:
        data = payload(S3_THRESHOLD + 99)
        name = sha(data)
        blobs.put(name, pieces(data), LIMIT)
        for start, length in ((0, 1), (5, 100), (S3_THRESHOLD, 99), (S3_THRESHOLD + 98, 1), (7, None), (0, len(data))):
            with blobs.open(name, start, length) as f:
                got = f.read()
                assert f.read() == b""  # nothing past the window
            assert got == data[start:None if length is None else start + length], (start, length)

    def test_a_hash_mismatch_is_refused_and_nothing_is_visible(self, blobs: BlobStore, s3_or_none: S3Server | None) -> None:
        for size in (10, 2 * S3_THRESHOLD + 1):
            data = payload(size)
            wrong = sha(data + b"!")
            with pytest.raises(ApiError) as err:
                blobs.put(wrong, pieces(data), LIMIT)
            assert (err.value.status, err.value.code) == (400, "hash_mismatch")
            assert not blobs.exists(wrong) and blobs.size(wrong) is None
            assert visible(blobs, s3_or_none) == [] and debris(blobs) == []

    def test_too_large_is_413_and_stores_nothing(self, blobs: BlobStore, s3_or_none: S3Server | None) -> None:
        data = payload(2 * S3_THRESHOLD + 5)
        with pytest.raises(ApiError) as err:
            blobs.put(sha(data), pieces(data), S3_THRESHOLD + 10)
        assert (err.value.status, err.value.code) == (413, "too_large")
        assert visible(blobs, s3_or_none) == [] and debris(blobs) == []

    def test_a_body_that_breaks_off_stores_nothing(self, blobs: BlobStore, s3_or_none: S3Server | None) -> None:
        data = payload(3 * S3_THRESHOLD)
        for after in (100, S3_THRESHOLD + S3_THRESHOLD // 2):  # before any part, and after one went up
            with pytest.raises(ConnectionResetError):
                blobs.put(sha(data), breaks_off(data, after), LIMIT)
            assert not blobs.exists(sha(data))
            assert visible(blobs, s3_or_none) == [] and debris(blobs) == []

    def test_a_stored_blob_is_not_written_again_but_its_body_is_still_checked(self, blobs: BlobStore) -> None:
        data = payload(S3_THRESHOLD + 3)
        name = sha(data)
        assert blobs.put(name, pieces(data), LIMIT) == len(data)
        assert blobs.put(name, pieces(data), LIMIT) == len(data)
        with pytest.raises(ApiError) as err:
            blobs.put(name, pieces(b"other bytes"), LIMIT)
        assert err.value.code == "hash_mismatch"
        assert blobs.read_bytes(name) == data and debris(blobs) == []

    def test_absent_blobs_and_delete(self, blobs: BlobStore, s3_or_none: S3Server | None) -> None:
        data = b"to be deleted"
        name = sha(data)
        with pytest.raises(ApiError) as err:
            blobs.open(name)
        assert err.value.status == 404
        blobs.put(name, [data], LIMIT)
        assert blobs.delete(name) is True
        assert blobs.delete(name) is False
        assert not blobs.exists(name) and visible(blobs, s3_or_none) == []
        with pytest.raises(ApiError):
            blobs.read_bytes(name)

    def test_sweep_removes_only_stale_debris(self, kind: str, s3_or_none: S3Server | None, tmp_path: Path) -> None:
        patient = make_store(kind, s3_or_none, tmp_path, stale_seconds=3600)
        patient.check()
        leave_dead_upload(patient, "a" * 64, payload(S3_THRESHOLD))
        assert len(debris(patient)) == 1
        assert patient.sweep() == 0  # it might still be going: untouched for less than an hour
        assert len(debris(patient)) == 1 and not patient.exists("a" * 64)
        time.sleep(1.1)  # S3 times have whole seconds: the debris must be at least this old for a 1 s sweep
        hasty = make_store(kind, s3_or_none, tmp_path, stale_seconds=1.0)
        if isinstance(patient, S3BlobStore):  # the same bucket, not a new one
            hasty = S3BlobStore(patient.location, endpoint_url=patient.endpoint_url,
                                multipart_threshold=S3_THRESHOLD, stale_seconds=1.0)
        assert hasty.sweep() == 1
        assert debris(hasty) == [] and not hasty.exists("a" * 64)

    def test_presign_is_offered_only_by_a_bucket_configured_for_it(self, kind: str, blobs: BlobStore,
                                                                  s3_or_none: S3Server | None, tmp_path: Path) -> None:
        data = b'{"a": 1}'
        name = sha(data)
        blobs.put(name, [data], LIMIT)
        assert blobs.presign(name, "application/json", None) is None
        assert (blobs.local_path(name) is not None) == (kind == "disk")
        if kind == "s3":
            assert isinstance(blobs, S3BlobStore)
            signed = S3BlobStore(blobs.location, endpoint_url=blobs.endpoint_url, presign=True)
            url = signed.presign(name, "application/json", 'attachment; filename="a.json"')
            assert url is not None
            got = requests.get(url, timeout=30)
            assert got.status_code == 200 and got.content == data
            assert got.headers["Content-Type"] == "application/json"
            assert got.headers["Content-Disposition"] == 'attachment; filename="a.json"'


# --------------------------------------------------------------------------- the bucket only


def test_above_the_threshold_a_blob_goes_up_in_parts(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s3.env.items():
        monkeypatch.setenv(k, v)
    bucket = s3.bucket()
    store = S3BlobStore(f"s3://{bucket}", endpoint_url=s3.endpoint, multipart_threshold=S3_THRESHOLD)
    for size, parts in ((S3_THRESHOLD, 0), (S3_THRESHOLD + 1, 2), (3 * S3_THRESHOLD, 3)):
        data = payload(size, seed=1)
        store.put(sha(data), pieces(data), LIMIT)
        etag = s3.client().head_object(Bucket=bucket, Key=store.key(sha(data)))["ETag"].strip('"')
        # A multipart object's ETag ends in "-<number of parts>"; a single PUT's is the MD5.
        assert etag.endswith(f"-{parts}") if parts else etag == hashlib.md5(data).hexdigest()
    assert store.key("ab" * 32) == f"ab/ab/{'ab' * 32}"  # no prefix: the disk layout at the bucket's root


def test_storage_faults_are_5xx_in_the_error_shape(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s3.env.items():
        monkeypatch.setenv(k, v)
    data = b"bytes"
    absent_bucket = S3BlobStore("s3://wl-no-such-bucket-here/p", endpoint_url=s3.endpoint)
    for call in (absent_bucket.check, lambda: absent_bucket.put(sha(data), [data], LIMIT),
                 lambda: absent_bucket.exists(sha(data))):
        with pytest.raises(ApiError) as refused:
            call()
        assert refused.value.status == 502 and refused.value.code == "storage_error"
        assert "s3://wl-no-such-bucket-here/p" in refused.value.message and "NoSuchBucket" in refused.value.message
    nobody = S3BlobStore("s3://b/p", endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ApiError) as unreachable:
        nobody.put(sha(data), [data], LIMIT)
    assert unreachable.value.status == 503 and unreachable.value.code == "storage_unavailable"
    assert unreachable.value.body()["error"]["message"].startswith("the object store s3://b/p could not be used")


def test_s3_settings_need_an_s3_location(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="need --media s3://"):
        open_blob_store(tmp_path, s3_presign=True)
    with pytest.raises(ValueError, match="below S3's smallest part"):
        S3BlobStore("s3://b/p", multipart_threshold=1 << 20, client=object())
    with pytest.raises(ValueError, match="names no bucket"):
        S3BlobStore("s3:///p", client=object())


def test_a_server_on_a_media_directory_never_imports_boto3(tmp_path: Path) -> None:
    code = ("import sys; from wandblite.server.app import create_app; from wandblite.server.serve import open_store; "
            f"s = open_store('sqlite:///{tmp_path / 'db'}', {str(tmp_path / 'media')!r}); create_app(s); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=clean_env(WANDBLITE_HOME=str(tmp_path / "home")))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_boto3s_endpoint_variable_names_the_store_without_the_flag(s3: S3Server,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s3.env.items():
        monkeypatch.setenv(k, v)
    bucket = s3.bucket()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint.replace("127.0.0.1", "localhost"))
    store = S3BlobStore(f"s3://{bucket}/p")
    store.check()
    data = b"through the variable"
    store.put(sha(data), [data], LIMIT)
    assert store.read_bytes(sha(data)) == data and s3.keys(bucket) == [store.key(sha(data))]
