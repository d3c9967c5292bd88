"""A data source on S3 (a moto server on loopback): fetched, pinned by ETag, and a new
upload detected by `tether status`."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import write
from test_data_sources import BODY, SPEC, ok, project


def test_an_s3_source_is_pinned_by_etag_and_its_change_detected(
    repo: Path, s3_server: str,
) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket="dumps")
    s3.put_object(Bucket="dumps", Key="posts.xml", Body=BODY)
    root = project(repo, "s3://dumps/posts.xml", SPEC)
    # The endpoint (and any credential) lives in the local config, never committed.
    write(root / ".tether" / "config.local.yaml",
          f"sources:\n  posts:\n    endpoint_url: {s3_server}\n")
    assert "posts: fetched and pinned" in ok(root, "run")
    assert (root / "data" / "posts.xml").read_bytes() == BODY
    pin = json.loads((root / "tether.lock").read_text())["data"]["posts"]
    assert pin["source"] == "s3://dumps/posts.xml" and pin["etag"] and pin["size"] == len(BODY)
    assert "pinned, source unchanged (in the cache)" in ok(root, "status")
    s3.put_object(Bucket="dumps", Key="posts.xml", Body=BODY + b"<row/>\n")
    assert "posts: source changed since pinned (ETag" in ok(root, "status")
    assert "posts: fetched and pinned" in ok(root, "data", "update", "posts")
    assert (root / "data" / "posts.xml").read_bytes() == BODY + b"<row/>\n"
