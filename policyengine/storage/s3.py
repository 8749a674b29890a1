"""Objects in S3 (Ceph RGW on Open Data Hub, or any S3 endpoint): golden datasets in, evidence out.

Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a shared
credentials file, a web identity token); the engine never reads them itself and never logs them.
Downloads are cached by ETag, so a dataset is fetched once per version of the object, not once per
pass.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from policyengine.errors import StorageObjectMissingError, StorageUnavailableError

log = logging.getLogger("policyengine")

# Bounded: a pass must never wait minutes on a storage outage.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"{url!r} is not an s3://bucket/key URL")
        return cls(parsed.netloc, parsed.path.lstrip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, name: str) -> S3Location:
        prefix = self.key.rstrip("/")
        return S3Location(self.bucket, f"{prefix}/{name}" if prefix else name)


@dataclass(frozen=True)
class S3Settings:
    """Where the S3 API answers; None fields fall back to boto3's environment (AWS_ENDPOINT_URL…)."""

    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def from_environment(cls, endpoint_url: str | None = None) -> S3Settings:
        return cls(
            endpoint_url or os.environ.get("POLICYENGINE_S3_ENDPOINT_URL"),
            os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION"),
        )


class S3Store:
    """Reads and writes objects; every failure is a StorageUnavailableError (exit 3) or, for a key
    that does not exist, a StorageObjectMissingError naming it."""

    def __init__(self, settings: S3Settings, client: Any = None) -> None:
        self.settings = settings
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # imported here: only policies with S3 pay for boto3's start-up
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.settings.endpoint_url,
                region_name=self.settings.region or "us-east-1",
                config=Config(
                    connect_timeout=CONNECT_TIMEOUT_S,
                    read_timeout=READ_TIMEOUT_S,
                    retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
                    # Ceph RGW and most on-premises endpoints serve buckets by path.
                    s3={"addressing_style": "path"},
                    # RGW 16 cannot parse the aws-chunked checksum trailers newer boto3 sends.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
        return self._client

    def etag(self, location: S3Location) -> str:
        answer = self._call(
            "head",
            location,
            lambda: self.client.head_object(Bucket=location.bucket, Key=location.key),
        )
        return str(answer["ETag"]).strip('"')

    def fetch_cached(self, location: S3Location, cache_dir: Path) -> Path:
        """The object as a local file, downloaded only when its ETag is not cached yet."""
        etag = self.etag(location)
        digest = hashlib.sha256(f"{location}\0{etag}".encode()).hexdigest()[:32]
        suffix = "".join(Path(location.key).suffixes[-2:])
        cached = cache_dir / f"{digest}{suffix}"
        if cached.is_file():
            log.debug("%s: cached (ETag %s)", location, etag)
            return cached
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=cache_dir, prefix=".partial-")
        os.close(handle)
        try:
            self._call(
                "get",
                location,
                lambda: self.client.download_file(location.bucket, location.key, partial),
            )
            os.replace(partial, cached)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        return cached

    def get(self, location: S3Location) -> bytes:
        answer = self._call(
            "get",
            location,
            lambda: self.client.get_object(Bucket=location.bucket, Key=location.key),
        )
        body: bytes = answer["Body"].read()
        return body

    def list_objects(self, prefix: S3Location, limit: int = 100_000) -> list[tuple[str, float]]:
        """(key, last-modified timestamp) of the objects under `prefix`, at most `limit`."""
        found: list[tuple[str, float]] = []
        paginator = self.client.get_paginator("list_objects_v2")

        def walk() -> None:
            for page in paginator.paginate(Bucket=prefix.bucket, Prefix=prefix.key):
                for item in page.get("Contents", []):
                    found.append((str(item["Key"]), item["LastModified"].timestamp()))
                    if len(found) >= limit:
                        return

        self._call("list", prefix, walk)
        return found

    def put(self, location: S3Location, body: bytes, content_type: str) -> None:
        self._call(
            "put",
            location,
            lambda: self.client.put_object(
                Bucket=location.bucket, Key=location.key, Body=body, ContentType=content_type
            ),
        )

    def put_many(self, prefix: S3Location, objects: Mapping[str, tuple[bytes, str]]) -> list[str]:
        """Upload name → (body, content type) under prefix; the keys written, in order."""
        keys = []
        for name, (body, content_type) in objects.items():
            location = prefix.child(name)
            self.put(location, body, content_type)
            keys.append(location.key)
        return keys

    def _call(self, verb: str, location: S3Location, call: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call()
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in {"404", "NoSuchKey", "NotFound", "NoSuchBucket"} or status == 404:
                raise StorageObjectMissingError(
                    f"{location}: no such object (bucket {location.bucket!r}, key {location.key!r})"
                ) from error
            if status is not None and int(status) < 500 and code not in {"SlowDown"}:
                raise StorageObjectMissingError(
                    f"{location}: {verb} refused ({status} {code})"
                ) from error
            raise StorageUnavailableError(f"{location}: {verb} failed ({status} {code})") from error
        except BotoCoreError as error:
            where = self.settings.endpoint_url or "the default S3 endpoint"
            raise StorageUnavailableError(
                f"{location}: S3 at {where} unreachable ({type(error).__name__})"
            ) from error
