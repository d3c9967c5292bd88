"""The object store, the stat cache's keys, the run-cache and the config, as a library."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.cache.hashing import StatCache
from tether.cache.objects import ObjectStore
from tether.cache.runcache import RunCache
from tether.config import get_remote, list_remotes, load_config, remove_remote, set_remote
from tether.errors import CacheCorruptError, RemoteError, UsageError


def _tree(root: Path) -> Path:
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("alpha\n")
    (data / "sub" / "b.txt").write_text("beta\n")
    return data


@pytest.mark.parametrize("order", [("copy",), ("reflink", "copy"), ("hardlink", "copy")])
def test_save_restore_roundtrip(tmp_path: Path, order: tuple[str, ...]) -> None:
    store = ObjectStore(tmp_path, link_order=order)
    data = _tree(tmp_path)
    key = store.save(data)
    assert key == StatCache(None).hash_path(data)
    assert key.startswith("b3d:") and store.has(key) and store.verify(key)
    assert len(store.keys_for(key)) == 3
    file_key = store.save(data / "a.txt", digest=StatCache(None).hash_file(data / "a.txt"))
    assert file_key in store.keys_for(key)
    dest = tmp_path / "restored"
    store.restore(key, dest)
    assert (dest / "sub" / "b.txt").read_text() == "beta\n"
    store.restore(file_key, tmp_path / "single.txt")
    assert (tmp_path / "single.txt").read_text() == "alpha\n"
    for obj in store.iter_keys():
        assert not store.path_of(obj).stat().st_mode & 0o222  # objects are read-only


def test_corruption_is_detected_and_nothing_is_written(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path, link_order=("copy",))
    (tmp_path / "model.bin").write_text("weights\n")
    key = store.save(tmp_path / "model.bin")
    obj = store.path_of(key)
    obj.chmod(0o644)
    obj.write_text("rot\n")
    assert not store.verify(key)
    with pytest.raises(CacheCorruptError) as caught:
        store.restore(key, tmp_path / "out" / "model.bin")
    assert str(obj) in str(caught.value) and "model.bin" in str(caught.value)
    assert not (tmp_path / "out" / "model.bin").exists()
    with pytest.raises(RemoteError):
        store.restore("b3:" + "0" * 64, tmp_path / "x")


def test_run_cache_roundtrip(tmp_path: Path) -> None:
    runs = RunCache(tmp_path)
    assert runs.get("ab" * 16) is None
    runs.put("ab" * 16, {"outs": {"m": "b3:" + "1" * 64}, "metrics": {"acc": 1},
                         "experiment": {"ref": "refs/x", "name": "x"}, "run_id": "r"})
    assert runs.get("ab" * 16)["metrics"] == {"acc": 1}  # type: ignore[index]
    assert list(runs.fingerprints()) == ["ab" * 16]
    with pytest.raises(ValueError):
        runs.put("../escape", {})


def test_config_remotes_and_secrets(tmp_path: Path) -> None:
    (tmp_path / ".tether").mkdir()
    (tmp_path / ".tether" / "config.yaml").write_text("# header kept\ncache:\n  jobs: 4\n")
    set_remote(tmp_path, "store", "/srv/artifacts")
    assert get_remote(tmp_path).name == "store"  # the first remote is the default
    with pytest.raises(UsageError, match="password"):
        set_remote(tmp_path, "s3", "sftp://me:hunter2@host/path")
    with pytest.raises(UsageError, match="credential"):
        set_remote(tmp_path, "s3", "s3://b/p", options={"secret": "x"})
    set_remote(tmp_path, "mine", "sftp://me:hunter2@host/path", default=True, local=True)
    committed = (tmp_path / ".tether" / "config.yaml").read_text()
    assert committed.startswith("# header kept") and "hunter2" not in committed
    assert (tmp_path / ".tether" / "config.local.yaml").stat().st_mode & 0o077 == 0
    config = load_config(tmp_path)
    assert config["default_remote"] == "mine" and config["cache"]["jobs"] == 4
    assert [(r.name, r.default, r.local) for r in list_remotes(tmp_path)] == [
        ("store", False, False), ("mine", True, True)]
    remove_remote(tmp_path, "mine")
    assert get_remote(tmp_path).name == "store"  # the committed default shows again
    remove_remote(tmp_path, "store")
    with pytest.raises(RemoteError):
        get_remote(tmp_path)
    with pytest.raises(UsageError):
        remove_remote(tmp_path, "mine")
