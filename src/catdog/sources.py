"""Where the lab's photos come from: a folder, a zip or tar archive (local or downloaded, resumed and
sha256-checked), object storage, or the room's labels on Kafka; each names its files and reads many at
once. A file's class comes from its folder (``cat/``, ``Dogs/``) or its name (``cat.123.jpg``).
"""

from __future__ import annotations

import contextlib
import re
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Protocol

from catdog import CatdogError
from catdog.download import download

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff")
_CLASS_FOLDERS = {"cat": "cat", "cats": "cat", "dog": "dog", "dogs": "dog"}
_CLASS_FILE_PREFIX = re.compile(r"^(cat|dog)s?[._-]", re.IGNORECASE)


class DataError(CatdogError):
    """The data source cannot be used; the message says which and why."""


def label_for(name: str) -> str | None:
    """The class of a file from its path: a ``cat``/``Cat``/``dogs`` folder, else a ``cat.123.jpg`` name."""
    path = PurePosixPath(name.replace("\\", "/"))
    for folder in reversed(path.parts[:-1]):
        if folder.lower() in _CLASS_FOLDERS:
            return _CLASS_FOLDERS[folder.lower()]
    match = _CLASS_FILE_PREFIX.match(path.name)
    return match.group(1).lower() if match else None


def is_candidate(name: str) -> bool:
    base = PurePosixPath(name).name
    return not base.startswith(".") and base.lower().endswith(IMAGE_SUFFIXES) and "__MACOSX" not in name


class ImageSource(Protocol):
    """Where images come from: names (paths inside the source) and a way to read many of them."""

    description: str

    def names(self) -> list[str]: ...

    def read_many(self, names: Iterable[str], max_bytes: int) -> dict[str, bytes]:
        """Each file's bytes, but never more than ``max_bytes + 1`` of one: enough for the decoder to refuse
        it as too large, whatever size an archive declares (a zip bomb expands only that far)."""
        ...


class DirectorySource:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"folder {root}"

    def names(self) -> list[str]:
        return [
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and is_candidate(path.relative_to(self.root).as_posix())
        ]

    def read_many(self, names: Iterable[str], max_bytes: int) -> dict[str, bytes]:
        found = {}
        for name in names:
            with open(self.root / name, "rb") as stream:
                found[name] = stream.read(max_bytes + 1)
        return found


class ZipSource:
    def __init__(self, archive: zipfile.ZipFile, path: Path) -> None:
        self.archive = archive
        self.description = f"zip archive {path}"

    def names(self) -> list[str]:
        return [info.filename for info in self.archive.infolist() if not info.is_dir() and is_candidate(info.filename)]

    def read_many(self, names: Iterable[str], max_bytes: int) -> dict[str, bytes]:
        found = {}
        for name in names:
            with self.archive.open(name) as stream:  # decompressed as read: stops at the limit
                found[name] = stream.read(max_bytes + 1)
        return found


class TarSource:
    """Compressed tars cannot seek, so reads are done in one pass over the archive per batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"tar archive {path}"

    def names(self) -> list[str]:
        with tarfile.open(self.path, "r:*") as archive:
            return [member.name for member in archive if member.isfile() and is_candidate(member.name)]

    def read_many(self, names: Iterable[str], max_bytes: int) -> dict[str, bytes]:
        wanted, found = set(names), {}
        with tarfile.open(self.path, "r:*") as archive:
            for member in archive:
                if member.name in wanted and member.isfile():
                    stream = archive.extractfile(member)
                    found[member.name] = stream.read(max_bytes + 1) if stream else b""
                    if len(found) == len(wanted):
                        break
        return found


class KafkaSource:
    """Labelled photos on Kafka (``kafka:<labels topic>``): each image by its voters' majority, joined with
    its bytes on the images topic (catdog.labels). Records that are not labels, or name no image, are in
    ``skipped`` with the reason, as unusable files are."""

    def __init__(self, topic: str) -> None:
        from catdog.config import load_settings
        from catdog.labels import read_labelled

        kafka = load_settings().kafka
        topic = topic or kafka.feedback_topic
        found, self.skipped = read_labelled(kafka, topic)
        self.images = {image.name: image.data for image in found if image.majority}
        self.skipped += [
            (image.source, "", "voters-disagree", f"as many voters said cat as dog: {image.votes}")
            for image in found
            if not image.majority
        ]
        self.description = f"labels on Kafka topic {topic} at {kafka.bootstrap_servers}"

    def names(self) -> list[str]:
        return list(self.images)

    def read_many(self, names: Iterable[str], max_bytes: int) -> dict[str, bytes]:
        return {name: self.images[name][: max_bytes + 1] for name in names}


class S3Source:
    """Photos in object storage (``s3://bucket/prefix``, cat/ and dog/ below the prefix), through boto3
    with the settings' endpoint and keys (an OpenShift AI data connection or an ObjectBucketClaim). Each
    object is read with a Range request up to the size limit, never further."""

    def __init__(self, source: str) -> None:
        import boto3
        from botocore.config import Config

        from catdog.config import load_settings

        s3 = load_settings().s3
        bucket, _, prefix = source.removeprefix("s3://").partition("/")
        self.bucket = bucket or s3.bucket
        if not self.bucket:
            raise DataError(f"{source} names no bucket, and neither AWS_S3_BUCKET nor BUCKET_NAME is set")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            region_name=s3.region or "us-east-1",
            aws_access_key_id=s3.access_key,
            aws_secret_access_key=s3.secret_key,
            config=Config(retries={"max_attempts": 3}, s3={"addressing_style": "path"}),
        )
        self.description = f"s3://{self.bucket}/{self.prefix} at {s3.endpoint or 'AWS'}"

    def names(self) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        found = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
                found += [item["Key"][len(self.prefix) :] for item in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as error:
            raise DataError(f"cannot list {self.description}: {error}") from None
        return [name for name in found if is_candidate(name)]

    def read_many(self, names: Iterable[str], max_bytes: int) -> dict[str, bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        found = {}
        for name in names:
            try:
                answer = self.client.get_object(
                    Bucket=self.bucket, Key=self.prefix + name, Range=f"bytes=0-{max_bytes}"
                )
                found[name] = answer["Body"].read(max_bytes + 1)
            except (BotoCoreError, ClientError) as error:
                raise DataError(f"cannot read {name} from {self.description}: {error}") from None
        return found


@contextlib.contextmanager
def open_source(source: str, cache_dir: Path, sha256: str | None = None) -> Iterator[ImageSource]:
    """Open a folder, a zip/tar archive, an http(s) URL to an archive (downloaded into ``cache_dir``),
    ``s3://bucket/prefix`` (object storage), or ``kafka:<topic>`` (labelled photos on Kafka; the topic
    defaults to CATDOG_FEEDBACK_TOPIC)."""
    if source.startswith("kafka:"):
        yield KafkaSource(source.removeprefix("kafka:"))
        return
    if source.startswith("s3://"):
        yield S3Source(source)
        return
    if re.match(r"^https?://", source, re.IGNORECASE):
        path = download(source, cache_dir, sha256=sha256)
    else:
        path = Path(source).expanduser()
    if path.is_dir():
        yield DirectorySource(path)
    elif not path.exists():
        raise DataError(f"data source {source} does not exist (give a folder, a zip/tar archive or a URL)")
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            yield ZipSource(archive, path)
    elif tarfile.is_tarfile(path):
        yield TarSource(path)
    else:
        raise DataError(f"data source {path} is neither a folder nor a zip or tar archive")
