"""The same round trip through an S3-compatible server (moto) started on loopback."""

from __future__ import annotations

from pathlib import Path

from conftest import git
from helpers import exp_refs
from share.conftest import run_exp, tether_ok
from tether.cache.remote import Remote
from tether.project import object_store


def test_push_pull_through_s3(alice: Path, bob: Path, s3_server: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(
        Bucket="artifacts")
    for clone in (alice, bob):
        tether_ok(clone, "remote", "add", "s3", "s3://artifacts/project", "--default",
                  "--local", "-o", f"endpoint_url={s3_server}")
    run_exp(alice, "on-s3", 7)
    expected = (alice / "model.bin").read_text()
    out = tether_ok(alice, "push")
    assert "(s3)" in out and "object(s) sent" in out

    remote = Remote("s3://artifacts/project", {"endpoint_url": s3_server})
    listed = remote.list_objects()
    assert listed is not None
    store = object_store(alice)
    dir_key = next(k for k in listed if k.startswith("b3d:"))
    assert store.keys_for(dir_key) <= set(listed)
    assert all(store.verify(k) and store.size(k) == size for k, size in listed.items())
    assert remote.list_runs()

    tether_ok(bob, "pull")
    assert exp_refs(bob) == exp_refs(alice)
    tether_ok(bob, "checkout", "on-s3")
    assert (bob / "model.bin").read_text() == expected
    assert (bob / "features" / "part-7.txt").read_text() == "features for 7\n"
    # The committed config names no S3 endpoint or credential: it was added --local.
    assert "s3" not in git(alice, "show", "HEAD:.tether/config.yaml").split("store")[0]
